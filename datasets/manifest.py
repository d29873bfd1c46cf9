"""The manifest of a dataset version: every file of its tree, hashed once at registration.

Registration (``build_manifest``) walks the whole tree, refuses what a workspace must not be
given (links, files other than Parquet and the documentation files allowed by name, unreadable
files, a table whose partitions disagree on the schema), hashes every file at disk speed (large
reads in a pool of threads: hashlib releases the GIL), reads tables, schemas, partitions and
row counts from the Parquet footers, and computes one root hash over the sorted manifest.

Before a mount (``verify_tree``) the tree is compared with the manifest by path, size, inode and
modification time only: nothing is read, so a start costs the same whatever the hub did before.
Content changes that keep all four (a write in place that restores the time) are the
scrubber's to find (``datasets.scrub``), by re-hashing at a bounded rate.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

# Files a dataset may hold beside its Parquet files: its documentation, by exact name.
DOCUMENTATION_FILES = frozenset({"README.md", "README.txt", "dataset.yaml", "LICENSE"})
# Written by registration into the version's folder: what a researcher reads in the workspace.
# Its leading "_" makes pandas/pyarrow skip it when reading the folder as a dataset.
# Listed in the manifest and checked like any file, but outside the root hash, which it shows.
GENERATED_DOC = "_DATASET.md"
BLOCK = 8 << 20  # 8 MiB reads: the disk streams, Python's loop is negligible
PARTITION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=[^/=]+$")

# Bytes read to hash, since the process started: how tests tell that a check re-hashed nothing.
_hashed = {"bytes": 0, "files": 0}
_hashed_lock = threading.Lock()


def hashed_so_far() -> dict[str, int]:
    with _hashed_lock:
        return dict(_hashed)


class ManifestError(ValueError):
    """A tree that cannot be registered; the message names the file and what to do."""


class TreeChanged(Exception):
    """A tree that no longer matches its manifest; ``problem`` names the file."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, POSIX
    size: int
    sha256: str
    inode: int
    mtime_ns: int

    def row(self) -> list:
        return [self.path, self.size, self.sha256, self.inode, self.mtime_ns]


@dataclass
class Manifest:
    files: list[FileEntry]
    root_hash: str
    tables: dict[str, dict] = field(default_factory=dict)

    @property
    def row_count(self) -> int:
        return sum(t["rows"] for t in self.tables.values())

    @property
    def byte_count(self) -> int:
        return sum(f.size for f in self.files)

    def rows(self) -> list[list]:
        return [f.row() for f in self.files]


def merkle_root(entries: Iterable[tuple[str, int, str]]) -> str:
    """Root of a binary hash tree over (path, size, sha256) leaves sorted by path; one changed
    byte anywhere, or one file renamed, added or removed, changes it."""
    level = [hashlib.sha256(b"\x00" + f"{p}\x00{s}\x00{h}".encode()).digest() for p, s, h in sorted(entries)]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        pairs = [level[i:i + 2] for i in range(0, len(level), 2)]
        level = [hashlib.sha256(b"\x01" + b"".join(pair)).digest() if len(pair) == 2 else pair[0] for pair in pairs]
    return level[0].hex()


def walk(folder: Path) -> dict[str, os.stat_result]:
    """Every entry under ``folder`` by relative path, with its lstat (links are not followed)."""
    found: dict[str, os.stat_result] = {}
    pending = [("", folder)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = f"{prefix}{entry.name}"
                info = entry.stat(follow_symlinks=False)
                found[relative] = info
                if stat.S_ISDIR(info.st_mode):
                    pending.append((relative + "/", Path(entry.path)))
    return found


def _refusals(tree: dict[str, os.stat_result], allowed_docs: frozenset[str]) -> list[str]:
    problems = []
    for path, info in sorted(tree.items()):
        if stat.S_ISLNK(info.st_mode):
            problems.append(f"{path} is a symbolic link; replace it with the file itself")
        elif stat.S_ISDIR(info.st_mode):
            continue
        elif not stat.S_ISREG(info.st_mode):
            problems.append(f"{path} is not a regular file; remove it")
        elif not path.endswith(".parquet") and Path(path).name not in allowed_docs:
            problems.append(f"{path} is not a Parquet file; convert it to Parquet or move it out "
                            f"(documentation may be named {', '.join(sorted(allowed_docs))})")
    return problems


_buffers = threading.local()  # one read buffer per hashing thread, reused for every file


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """sha256 of a file, read into the thread's own buffer: ``read(BLOCK)`` allocated (and the
    kernel mapped) 8 MiB for every read, which cost more than hashing a 100 KB partition file."""
    buffer = getattr(_buffers, "block", None)
    if buffer is None:
        buffer = _buffers.block = memoryview(bytearray(BLOCK))
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as stream:
        while read := stream.readinto(buffer):
            digest.update(buffer[:read])
            size += read
            if progress:
                progress(read)
    with _hashed_lock:
        _hashed["bytes"] += size
        _hashed["files"] += 1
    return digest.hexdigest()


def read_footer(path: Path):
    """The Parquet footer (``FileMetaData``) of a file, or the exception a broken one raises."""
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a broken footer
        return exc


def hash_files(folder: Path, paths: list[str], progress: Callable[[int], None] | None = None,
               threads: int | None = None, footers: dict[str, object] | None = None) -> dict[str, str]:
    """sha256 of each file, several at once (reads and hashing overlap across threads).

    With ``footers`` (a dict to fill), each Parquet file's footer is read by the thread that has
    just hashed it, while its last block is still in the page cache and while the other threads
    hash: reading 1,000 footers one after the other, after all the hashing, was a fifth of a
    registration's time."""
    def one(path: str) -> tuple[str, str]:
        try:
            digest = sha256_file(folder / path, progress)
        except OSError as exc:
            raise ManifestError(f"{path} cannot be read ({exc.strerror}); make it readable by root "
                                "and register again. Nothing was registered.") from None
        if footers is not None and path.endswith(".parquet"):
            footers[path] = read_footer(folder / path)  # one key per thread: dict assignment is atomic
        return path, digest

    with ThreadPoolExecutor(max_workers=threads or min(8, (os.cpu_count() or 1) + 2)) as pool:
        return dict(pool.map(one, paths))


def table_of(path: str) -> tuple[str, tuple[str, ...]]:
    """(table, partition folders) of a Parquet file: the first folder is the table unless the
    dataset is one table (files or ``key=value`` folders at its top, table ``.``)."""
    parts = path.split("/")[:-1]
    if not parts or PARTITION.match(parts[0]):
        return ".", tuple(parts)
    return parts[0], tuple(parts[1:])


def describe_tables(folder: Path, parquet: list[str], sizes: dict[str, int] | None = None,
                    footers: dict[str, object] | None = None) -> dict[str, dict]:
    """Tables, schemas, partitions and row counts from the Parquet footers (``footers``, read
    while hashing, or read here); a schema that differs between files of one table is refused,
    naming both files."""
    tables: dict[str, dict] = {}
    first: dict[str, tuple[str, object]] = {}  # table -> (its first file, that file's Parquet schema)
    for path in parquet:
        table, partition = table_of(path)
        bad = [p for p in partition if not PARTITION.match(p)]
        if bad:
            raise ManifestError(f"{path}: folder {bad[0]} inside table {table} is not a partition (key=value); "
                                "lay the table out as table/key=value/…/file.parquet. Nothing was registered.")
        metadata = footers[path] if footers and path in footers else read_footer(folder / path)
        if isinstance(metadata, Exception):
            raise ManifestError(f"{path} is not a readable Parquet file ({metadata}); replace it. "
                                "Nothing was registered.")
        if table not in tables:
            first[table] = (path, metadata.schema)
            tables[table] = {"schema": _columns(metadata), "partitions": set(), "rows": 0, "files": 0, "bytes": 0,
                             "partition_keys": [p.split("=")[0] for p in partition]}
        info = tables[table]
        # comparing Parquet schemas is cheap; the Arrow form is built only to name a difference
        if not metadata.schema.equals(first[table][1]) and _columns(metadata) != info["schema"]:
            raise ManifestError(
                f"table {table}: {path} has columns {_shown(_columns(metadata))} but {first[table][0]} has "
                f"{_shown(info['schema'])}; every partition of a table has one schema. Nothing was registered.")
        info["partitions"].add("/".join(partition))
        info["rows"] += metadata.num_rows
        info["files"] += 1
        info["bytes"] += sizes[path] if sizes else (folder / path).stat().st_size
    for info in tables.values():
        info["partitions"] = sorted(p for p in info["partitions"] if p)
    return tables


def _columns(metadata) -> list[list[str]]:
    return [[f.name, str(f.type)] for f in metadata.schema.to_arrow_schema().remove_metadata()]


def _shown(schema: list[list[str]]) -> str:
    return ", ".join(f"{name} {kind}" for name, kind in schema)


def build_manifest(folder: Path, *, allowed_docs: frozenset[str] = DOCUMENTATION_FILES,
                   progress: Callable[[int, int], None] | None = None,
                   threads: int | None = None, describe: tuple[str, str] | None = None) -> Manifest:
    """Walk, check, hash and describe ``folder``; raise ``ManifestError`` before anything is
    recorded. ``progress(total_bytes, advanced)`` is called as bytes are hashed. With
    ``describe=(slug, version)`` the documentation ``_DATASET.md`` is written into the folder."""
    allowed_docs = allowed_docs | {GENERATED_DOC}
    if folder.is_symlink():
        raise ManifestError(f"{folder} is a symbolic link; register the folder itself. Nothing was registered.")
    if not folder.is_dir():
        raise ManifestError(f"{folder} is not a folder; put the dataset there first. Nothing was registered.")
    tree = walk(folder)
    problems = _refusals(tree, allowed_docs)
    if problems:
        raise ManifestError("; ".join(problems[:10]) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else "")
                            + ". Nothing was registered.")
    files = sorted(p for p, info in tree.items() if stat.S_ISREG(info.st_mode))
    if not any(p.endswith(".parquet") for p in files):
        raise ManifestError(f"{folder} holds no Parquet file. Nothing was registered.")
    total = sum(tree[p].st_size for p in files)
    advance = (lambda n: progress(total, n)) if progress else None
    footers: dict[str, object] = {}
    digests = hash_files(folder, files, advance, threads, footers)
    tables = describe_tables(folder, [p for p in files if p.endswith(".parquet")],
                             {p: tree[p].st_size for p in files}, footers)
    after = walk(folder)
    entries = []
    for path in files:
        info, now = tree[path], after.get(path)
        if now is None or (now.st_size, now.st_ino, now.st_mtime_ns) != (info.st_size, info.st_ino, info.st_mtime_ns):
            raise ManifestError(f"{path} changed while it was being hashed; register again once nothing writes "
                                "to the folder. Nothing was registered.")
        entries.append(FileEntry(path, info.st_size, digests[path], info.st_ino, info.st_mtime_ns))
    if set(after) != set(tree):
        raise ManifestError(f"files were added or removed in {folder} while it was being hashed "
                            f"({', '.join(sorted(set(after) ^ set(tree))[:5])}); register again. Nothing was registered.")
    data = [e for e in entries if e.path != GENERATED_DOC]
    manifest = Manifest(data, merkle_root((e.path, e.size, e.sha256) for e in data), tables)
    if describe:
        manifest.files = sorted(data + [_write_doc(folder, documentation(describe[0], describe[1], manifest))],
                                key=lambda e: e.path)
    return manifest


def documentation(slug: str, version: str, manifest: Manifest) -> str:
    """_DATASET.md: tables, columns and types, rows, partitions, version and root hash."""
    lines = [f"# {slug} {version}", "", f"Root hash (sha256 Merkle root over the sorted manifest): `{manifest.root_hash}`",
             f"{len(manifest.files)} files, {manifest.byte_count:,} bytes, {manifest.row_count:,} rows.", ""]
    for name, info in sorted(manifest.tables.items()):
        where = f"/data/{slug}" if name == "." else f"/data/{slug}/{name}"
        lines += [f"## Table {slug if name == '.' else name}", "", f"- Read with: `pd.read_parquet('{where}')` or "
                  f"`duckdb.sql(\"select * from '{where}/**/*.parquet'\")`",
                  f"- Rows: {info['rows']:,} in {info['files']} files ({info['bytes']:,} bytes)",
                  f"- Partitioned by: {', '.join(info['partition_keys']) or 'nothing'}; "
                  f"{len(info['partitions'])} partitions" + (f" ({info['partitions'][0]} … {info['partitions'][-1]})"
                                                             if info["partitions"] else ""), "",
                  "| column | type |", "|---|---|", *[f"| {c} | {t} |" for c, t in info["schema"]], ""]
    return "\n".join(lines)


def _write_doc(folder: Path, text: str) -> FileEntry:
    """Write _DATASET.md unless it already says exactly this (so a reload changes no inode)."""
    path = folder / GENERATED_DOC
    body = text.encode()
    if not (path.is_file() and not path.is_symlink() and path.read_bytes() == body):
        temporary = folder / f".{GENERATED_DOC}.tmp"
        temporary.write_bytes(body)
        os.replace(temporary, path)
    info = path.stat()
    return FileEntry(GENERATED_DOC, info.st_size, hashlib.sha256(body).hexdigest(), info.st_ino, info.st_mtime_ns)


def make_read_only(folder: Path) -> None:
    """Files 0444 and folders 0555, owned by root when run as root; the mtime does not change."""
    as_root = os.geteuid() == 0
    for path, info in walk(folder).items():
        target = folder / path
        if as_root and (info.st_uid, info.st_gid) != (0, 0):
            os.lchown(target, 0, 0)
        os.chmod(target, 0o555 if stat.S_ISDIR(info.st_mode) else 0o444)
    if as_root:
        os.chown(folder, 0, 0)
    os.chmod(folder, 0o555)


def verify_tree(folder: Path, files: list[list]) -> None:
    """Compare the tree with its manifest rows ``[path, size, sha256, inode, mtime_ns]`` by path,
    size, inode and mtime; raise ``TreeChanged`` naming the first file that differs. Reads no file."""
    if folder.is_symlink():
        raise TreeChanged(f"its folder {folder.name} is a symbolic link")
    if not folder.is_dir():
        raise TreeChanged(f"its folder {folder} is missing")
    tree = walk(folder)
    links = sorted(p for p, info in tree.items() if stat.S_ISLNK(info.st_mode))
    if links:
        raise TreeChanged(f"{links[0]} is a symbolic link")
    present = {p: info for p, info in tree.items() if not stat.S_ISDIR(info.st_mode)}
    expected = {row[0]: row for row in files}
    added, missing = sorted(set(present) - set(expected)), sorted(set(expected) - set(present))
    by_inode = {present[p].st_ino: p for p in added}
    for path in missing:
        if expected[path][3] in by_inode:
            raise TreeChanged(f"{path} was renamed to {by_inode[expected[path][3]]}")
    if added:
        raise TreeChanged(f"{added[0]} was added" + (f" (and {len(added) - 1} more files)" if len(added) > 1 else ""))
    if missing:
        raise TreeChanged(f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else ""))
    for path, (_, size, _, inode, mtime_ns) in sorted(expected.items()):
        info = present[path]
        if not stat.S_ISREG(info.st_mode):
            raise TreeChanged(f"{path} is no longer a regular file")
        if (info.st_size, info.st_ino, info.st_mtime_ns) != (size, inode, mtime_ns):
            raise TreeChanged(f"{path} was changed (size, inode or modification time differ from the manifest)")
