"""The end of a project's life (SATRE 3.1.09, 1.4.04): once closed for longer than its retention
period, its files are archived, sealed, then wiped; the catalogue and the public register keep it.

What is archived: the project's folder under the workspaces root (``shared``, mounted as /project,
and ``homes``), and the egress store's frozen files and release folders of its export requests.
The archive is one sealed tar (``datasets.sealed``: AES-256-GCM, key from ``TRE_ARCHIVE_KEY_FILE``)
holding the files and ``MANIFEST.json`` (path, size, sha256 of each), beside a plain
``archive.json`` (project, date, sha256 of the sealed file, counts) so an operator finds an archive
without the key. Steps, each an audit row: archive (written, then read back and checked against the
manifest before anything is deleted), wipe. ``restore`` reverses it into empty places.

A frozen egress file is stored once by digest for all projects: it is wiped only when no request of
a project that keeps its files names it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from tre_core.db import session_scope
from datasets.models import Project, ProjectStatus
from datasets.sealed import OpeningReader, SealError, SealingWriter, load_key

MANIFEST = "MANIFEST.json"
SYSTEM = "tre-lifecycle"  # the actor of the periodic run


class ArchiveError(RuntimeError):
    """An archive that cannot be made or restored; the message says what to do. Nothing was deleted."""


@dataclass(frozen=True)
class Places:
    """Where a project's files live and where archives go (from the settings)."""

    workspaces_root: Path
    egress_root: Path
    archive_root: Path
    key_file: Path


@dataclass(frozen=True)
class ArchiveResult:
    project: str
    folder: Path
    files: int
    bytes: int
    sha256: str


def retention_ends(project: Project, default_days: int) -> dt.date | None:
    closed = project.closed_on or project.ends_on
    if closed is None:
        return None
    return closed + dt.timedelta(days=project.retention_days if project.retention_days is not None else default_days)


def set_retention(session: Session, steward: str, slug: str, days: int) -> Project:
    """A steward sets how long a project's files are kept once it is closed (audited)."""
    from datasets.workflow import WorkflowError, require_steward

    require_steward(session, steward)
    project = session.get(Project, slug)
    if project is None:
        raise WorkflowError(f"There is no project {slug}; `tre catalogue projects` lists them.")
    if not 0 <= days <= 36500:
        raise WorkflowError(f"{days} is not a retention period: give a number of days from 0 to 36500.")
    project.retention_days = days
    audit.record(session, steward, AuditAction.PROJECT_STATUS, project=slug, details={"retention_days": days})
    return project


def expired_projects(session: Session, today: dt.date, default_days: int) -> list[Project]:
    """Closed projects whose retention ended before today and whose files are still there."""
    closed = session.scalars(select(Project).where(Project.status == ProjectStatus.CLOSED,
                                                   Project.archived_at.is_(None)).order_by(Project.slug))
    return [p for p in closed if (end := retention_ends(p, default_days)) is not None and end < today]


def _egress_files(session: Session, slug: str) -> tuple[set[str], set[str], list[str]]:
    """(digests this project's requests froze, digests still needed by projects that keep their
    files, the project's request ids). Plain SQL: the catalogue does not import the egress review."""
    rows = session.execute(text(
        "SELECT r.project_slug, f.sha256, r.id FROM egress_files f JOIN egress_requests r ON r.id = f.request_id "
        "JOIN projects p ON p.slug = r.project_slug WHERE f.sha256 IS NOT NULL AND p.archived_at IS NULL")).all()
    mine = {sha for project, sha, _ in rows if project == slug}
    others = {sha for project, sha, _ in rows if project != slug}
    ids = session.scalars(text("SELECT id FROM egress_requests WHERE project_slug = :slug"), {"slug": slug}).all()
    return mine, others, [str(i) for i in ids]


def _sources(places: Places, slug: str, digests: set[str], request_ids: list[str]) -> list[tuple[str, Path]]:
    """(name in the archive, path on disk) of everything to archive."""
    found: list[tuple[str, Path]] = []
    workspace = places.workspaces_root / slug
    if workspace.is_dir():
        found.append(("workspace", workspace))
    for digest in sorted(digests):
        if (places.egress_root / "store" / digest).is_file():
            found.append((f"egress/store/{digest}", places.egress_root / "store" / digest))
    for request_id in request_ids:
        folder = places.egress_root / "releases" / request_id
        if folder.is_dir():
            found.append((f"egress/releases/{request_id}", folder))
    return found


def _walk(name: str, path: Path):
    """Every entry below ``path`` (itself included), without following links."""
    yield name, path
    if path.is_dir() and not path.is_symlink():
        for child in sorted(path.iterdir()):
            yield from _walk(f"{name}/{child.name}", child)


class _Hashing(io.RawIOBase):
    def __init__(self, stream) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.stream.readinto(buffer)
        self.digest.update(memoryview(buffer)[:count])
        return count


def _write_archive(target: Path, key: bytes, sources: list[tuple[str, Path]]) -> tuple[int, int]:
    manifest, total = [], 0
    with target.open("wb") as raw:
        with SealingWriter(raw, key) as sealed, tarfile.open(fileobj=sealed, mode="w|") as tar:
            for top, root in sources:
                for name, path in _walk(top, root):
                    info = tar.gettarinfo(str(path), arcname=name)
                    if info.isreg():
                        with path.open("rb") as stream:
                            hashing = _Hashing(stream)
                            tar.addfile(info, io.BufferedReader(hashing))
                        manifest.append({"path": name, "size": info.size, "sha256": hashing.digest.hexdigest()})
                        total += info.size
                    elif info.isdir() or info.issym():
                        tar.addfile(info)
                        if info.issym():
                            manifest.append({"path": name, "link": info.linkname})
            body = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime = len(body), int(dt.datetime.now().timestamp())
            tar.addfile(info, io.BytesIO(body))
        raw.flush()
        os.fsync(raw.fileno())
    return len([m for m in manifest if "sha256" in m]), total


def read_archive(archive: Path, key: bytes, extract_to: Path | None = None) -> list[dict]:
    """Open the sealed tar, check every file against the manifest (and extract below
    ``extract_to`` if given); the manifest, or ``ArchiveError`` naming the first mismatch."""
    seen: dict[str, tuple[int, str]] = {}
    manifest = None
    try:
        with archive.open("rb") as raw, OpeningReader(raw, key) as opened, \
                tarfile.open(fileobj=io.BufferedReader(opened), mode="r|") as tar:
            for member in tar:
                if member.name.startswith("/") or ".." in PurePosixPath(member.name).parts:
                    raise ArchiveError(f"{member.name!r} in {archive} is not a relative path.")
                if member.name == MANIFEST:
                    manifest = json.loads(tar.extractfile(member).read())
                    continue
                if member.isreg():
                    digest, size, stream = hashlib.sha256(), 0, tar.extractfile(member)
                    out = None
                    if extract_to is not None:
                        target = extract_to / PurePosixPath(member.name)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        out = target.open("wb")
                    while block := stream.read(1 << 20):
                        digest.update(block)
                        size += len(block)
                        if out:
                            out.write(block)
                    if out:
                        out.close()
                        _restore_attributes(target, member)
                    seen[member.name] = (size, digest.hexdigest())
                elif extract_to is not None:
                    tar.extract(member, extract_to, filter="tar")
    except (SealError, tarfile.TarError) as error:
        raise ArchiveError(f"The archive {archive} cannot be read: {error}") from error
    if manifest is None:
        raise ArchiveError(f"The archive {archive} has no manifest: it was cut short.")
    for entry in manifest:
        if "sha256" in entry and seen.get(entry["path"]) != (entry["size"], entry["sha256"]):
            raise ArchiveError(f"{entry['path']} in {archive} does not match its manifest entry.")
    return manifest


def _restore_attributes(target: Path, member: tarfile.TarInfo) -> None:
    os.chmod(target, member.mode & 0o775)
    if os.geteuid() == 0:
        os.chown(target, member.uid, member.gid)
    os.utime(target, (member.mtime, member.mtime))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def archive_project(url: str, places: Places, slug: str, actor: str = SYSTEM) -> ArchiveResult:
    """Archive then wipe one closed project's files (module docstring). Three transactions: read
    what to archive; record the archive once it is written and read back; wipe, then record that."""
    with session_scope(url) as session:
        project = session.get(Project, slug)
        if project is None or project.status != ProjectStatus.CLOSED:
            raise ArchiveError(f"Project {slug} is not closed; only a closed project's files are archived.")
        if project.archived_at is not None:
            raise ArchiveError(f"Project {slug}'s files were archived on {project.archived_at:%Y-%m-%d} already.")
        digests, needed_elsewhere, request_ids = _egress_files(session, slug)
    key = load_key(places.key_file, create=True)
    now = dt.datetime.now(dt.UTC)
    sources = _sources(places, slug, digests, request_ids)
    folder = places.archive_root / f"{slug}-{now:%Y%m%dT%H%M%SZ}"
    folder.mkdir(parents=True, mode=0o700)
    sealed = folder / "files.tar.sealed"
    files, size = _write_archive(sealed, key, sources)
    read_archive(sealed, key)  # read back before anything is deleted
    result = ArchiveResult(slug, folder, files, size, _sha256_file(sealed))
    (folder / "archive.json").write_text(json.dumps({
        "project": slug, "archived_at": now.isoformat(), "sealed_sha256": result.sha256, "files": files,
        "bytes": size, "sealed_with": "AES-256-GCM STREAM (datasets/sealed.py)", "key_file": str(places.key_file)},
        indent=1))
    with session_scope(url) as session:  # the archive is on the record before its sources go
        audit.record(session, actor, AuditAction.PROJECT_ARCHIVED, project=slug, details={
            "archive": str(folder), "sha256": result.sha256, "files": files, "bytes": size})
    wiped = []
    for name, path in sources:
        if name.startswith("egress/store/") and path.name in needed_elsewhere:
            continue
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
        wiped.append(name)
    with session_scope(url) as session:
        session.get(Project, slug).archived_at = now
        audit.record(session, actor, AuditAction.PROJECT_WIPED, project=slug, details={"removed": wiped})
    return result


def archive_expired(url: str, places: Places, today: dt.date, default_days: int,
                    actor: str = SYSTEM) -> list[ArchiveResult]:
    with session_scope(url) as session:
        slugs = [p.slug for p in expired_projects(session, today, default_days)]
    return [archive_project(url, places, slug, actor) for slug in slugs]


def restore_project(url: str, places: Places, slug: str, folder: Path, actor: str) -> list[dict]:
    """Put an archive's files back where they were: only into empty places, each file checked."""
    record = json.loads((folder / "archive.json").read_text()) if (folder / "archive.json").is_file() else None
    if record is None or record.get("project") != slug:
        raise ArchiveError(f"{folder} is not an archive of project {slug} (no archive.json naming it).")
    sealed = folder / "files.tar.sealed"
    if _sha256_file(sealed) != record["sealed_sha256"]:
        raise ArchiveError(f"{sealed} is not the file that was archived (its sha256 changed).")
    if (places.workspaces_root / slug).exists():
        raise ArchiveError(f"{places.workspaces_root / slug} exists; move it away before restoring into it.")
    key = load_key(places.key_file)
    staging = places.archive_root / f".restore-{slug}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        manifest = read_archive(sealed, key, extract_to=staging)
        if (staging / "workspace").exists():
            os.replace(staging / "workspace", places.workspaces_root / slug)
        for part in ("store", "releases"):
            for item in sorted((staging / "egress" / part).glob("*")):
                target = places.egress_root / part / item.name
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                    os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    with session_scope(url) as session:
        project = session.get(Project, slug)
        if project is not None:
            project.archived_at = None
        audit.record(session, actor, AuditAction.PROJECT_RESTORED, project=slug, details={
            "archive": str(folder), "files": len([m for m in manifest if "sha256" in m])})
    return manifest
