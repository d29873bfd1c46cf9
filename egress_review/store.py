"""Files in and out of the airlock: reading a project's workspace safely, freezing into the store.

A path a researcher names is opened relative to the workspace's directory descriptor, one
component at a time with ``O_NOFOLLOW``, so no symlink (even one pointing inside), ``..`` or
absolute path leads anywhere; only a regular file with one link (a hard link could be a dataset
file) within the size limit is accepted. Freezing copies the open file into the content-addressed
store (``store/<sha256>``) through a temp file that is fsynced and renamed: a crash leaves either
nothing or a complete file, and an orphan (a file no row names) is harmless and swept at start.

Several replicas of the service may share the store (README: "More than one host"): temp names
are unique per process and host, two replicas freezing the same content rename complete files
onto the same name (either wins, both are the same bytes), and the sweep leaves alone any file
younger than its grace period, since a file another replica has just frozen is named by no row
until that replica's submission commits; a temp file whose writer (named in it: host and process)
is a dead process of the sweeping host goes at once, so a crash's half copy does not wait.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from egress_review.checks.tempnames import partial_beside, temporary_name
from egress_review.checks.i18n import Msg as M
from tre_core import faults
from tre_core.files import fsync_path
from tre_core.hashing import sha256_of

CHUNK = 1024 * 1024
# Seconds a store file must have lain unnamed before a sweep removes it: far longer than any
# submission takes between freezing its files and committing their digests.
SWEEP_GRACE = 6 * 3600.0
LINK_REFUSED = ("“{path}” is a symbolic link; links are refused, even to the project folder. Copy the file "
                "itself there.")


class PathRefused(ValueError):
    """A path that is not a plain file of the workspace; the message says why and what to do."""


FULL = (errno.ENOSPC, errno.EDQUOT)


class StoreFull(OSError):
    """The egress store's disk (or its quota) is full: what was being written was removed again and
    the request left as it was; the message says so and what to do (HTTP 503)."""

    def __init__(self, message: M) -> None:
        super().__init__(errno.ENOSPC, str(message))
        self.args = (message,)


def store_full_while(what: str) -> StoreFull:
    if what == "release":
        return StoreFull(M("The egress store's disk is full, so the release could not be written; nothing was "
                           "released and the request stays approved. Ask the TRE's operators to make room, then "
                           "release it again."))
    return StoreFull(M("The egress store's disk is full, so the request could not be submitted; nothing was lost "
                       "and the request is as it was. Ask the TRE's operators to make room, then submit it again."))


@dataclass(frozen=True)
class Frozen:
    sha256: str
    size: int


@dataclass(frozen=True)
class Candidate:
    """A store file the sweep may remove, as it was when listed: a file put in its place since
    (another replica freezing the same content renames a new file onto the name) differs in inode
    or modification time, and is kept."""

    path: Path
    inode: int
    mtime_ns: int


@dataclass(frozen=True)
class Entry:
    name: str
    is_dir: bool
    size: int


def _components(relative: str) -> list[str]:
    if not relative or relative.startswith("/") or "\x00" in relative:
        raise PathRefused(M("“{path}” is not a path inside the project folder; name a file relative to "
                                     "/project, such as outputs/table.csv.", path=relative))
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise PathRefused(M("“{path}” leaves the project folder (“..”); name a file inside /project.",
                                     path=relative))
    return parts


def _open_dir(parent: int, name: str, shown: str) -> int:
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        raise PathRefused(M("There is no folder “{path}” in the project folder.", path=shown)) from None
    if stat.S_ISLNK(info.st_mode):
        raise PathRefused(M(LINK_REFUSED, path=shown))
    if not stat.S_ISDIR(info.st_mode):
        raise PathRefused(M("“{path}” is not a folder.", path=shown))
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)


@contextmanager
def _walk(root: Path, parts: list[str]) -> Iterator[int]:
    """A descriptor of the folder ``parts`` inside ``root``, reached without following any link."""
    fds = [os.open(root, os.O_RDONLY | os.O_DIRECTORY)]
    try:
        for depth, part in enumerate(parts):
            fds.append(_open_dir(fds[-1], part, "/".join(parts[:depth + 1])))
        yield fds[-1]
    finally:
        for fd in reversed(fds):
            os.close(fd)


@contextmanager
def open_workspace_file(root: Path, relative: str, max_bytes: int) -> Iterator[tuple[int, int]]:
    """An open descriptor and size of the regular file ``relative`` in the workspace ``root``."""
    parts = _components(relative)
    with _walk(root, parts[:-1]) as folder:
        try:
            info = os.stat(parts[-1], dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            raise PathRefused(M("There is no file “{path}” in the project folder.", path=relative)) from None
        _refuse_unless_plain(info, relative, max_bytes)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
        try:
            info = os.fstat(fd)  # what was opened, should the name have changed since
            _refuse_unless_plain(info, relative, max_bytes)
            yield fd, info.st_size
        finally:
            os.close(fd)


def _refuse_unless_plain(info: os.stat_result, relative: str, max_bytes: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise PathRefused(M(LINK_REFUSED, path=relative))
    if stat.S_ISDIR(info.st_mode):
        raise PathRefused(M("“{path}” is a folder; add the files in it one by one.", path=relative))
    if not stat.S_ISREG(info.st_mode):
        raise PathRefused(M("“{path}” is not a regular file (a device, pipe or socket); only files leave.",
                                     path=relative))
    if info.st_nlink > 1:
        raise PathRefused(M("“{path}” is a hard link to another file (it could be a dataset's); save "
                                     "your result as a file of its own.", path=relative))
    if info.st_size > max_bytes:
        raise PathRefused(M("“{path}” is {size} bytes, over the limit of {limit} bytes per file; export "
                                     "a smaller summary.", path=relative, size=info.st_size, limit=max_bytes))


def check_workspace_file(root: Path, relative: str, max_bytes: int) -> int:
    """The size of an acceptable file, or the refusal; nothing is read."""
    with open_workspace_file(root, relative, max_bytes) as (_, size):
        return size


def list_folder(root: Path, relative: str) -> list[Entry]:
    """The plain files and folders of a workspace folder, for the browser; links are not shown."""
    parts = [] if relative in ("", ".", "/") else _components(relative)
    entries = []
    with _walk(root, parts) as folder:
        for name in sorted(os.listdir(folder)):
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode):
                entries.append(Entry(name, stat.S_ISDIR(info.st_mode), info.st_size))
    return entries


class Store:
    """The service's own files: frozen content by digest, and released requests."""

    def __init__(self, root: Path, *, slow_freeze: float = 0.0) -> None:
        self.root = root
        self.objects = root / "store"
        self.releases = root / "releases"
        self.slow_freeze = slow_freeze
        for folder in (self.objects, self.releases):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    def path_of(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.objects / sha256

    def freeze(self, workspace: Path, relative: str, max_bytes: int) -> Frozen:
        """Copy a workspace file into the store, hashing as it goes; durable before it is named.
        A full disk removes the half copy and raises ``StoreFull``: nothing else in the store changes."""
        temporary = self.objects / temporary_name()
        try:
            with open_workspace_file(workspace, relative, max_bytes) as (source, _):
                digest, size = hashlib.sha256(), 0
                with open(temporary, "wb") as target:
                    while chunk := os.read(source, CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise PathRefused(M("“{path}” grew over the limit of {limit} bytes while it was "
                                                "read.", path=relative, limit=max_bytes))
                        digest.update(chunk)
                        target.write(chunk)
                        faults.pause_at("freeze.copy")
                        if self.slow_freeze:
                            time.sleep(self.slow_freeze)
                    target.flush()
                    os.fsync(target.fileno())
            frozen = Frozen(digest.hexdigest(), size)
            os.chmod(temporary, 0o400)
            os.replace(temporary, self.path_of(frozen.sha256))  # a full directory can refuse even this
        except BaseException as failure:
            temporary.unlink(missing_ok=True)
            if isinstance(failure, OSError) and failure.errno in FULL:
                raise store_full_while("submission") from failure
            raise
        _fsync_dir(self.objects)
        return frozen

    def candidates_for_sweep(self, grace: float = SWEEP_GRACE) -> list[Candidate]:
        """Temp files and objects older than ``grace`` seconds, and the temp files of dead processes
        of this host (a crashed predecessor's, whatever their age): listed *before* the database is
        read, so an object frozen after this listing is never among them."""
        cutoff = time.time() - grace
        found = []
        for entry in self.objects.iterdir():
            try:
                info = entry.lstat()
                if info.st_mtime < cutoff or _writer_is_gone(entry.name):
                    found.append(Candidate(entry, info.st_ino, info.st_mtime_ns))
            except FileNotFoundError:
                continue  # renamed or removed by another replica meanwhile
        return found

    def sweep(self, candidates: list[Candidate], referenced: set[str]) -> int:
        """Remove the temp files and unnamed objects among ``candidates`` (left by a crash).

        A candidate is older than the grace period or its writer is gone, so no replica is still
        writing it, and
        ``referenced`` was read after the candidates were listed, so an object a submission named
        before then is kept. An object another replica froze again between the listing and now
        (the same content, renamed onto the same name) is a new file: its inode or modification time
        differ from the listing's, and it is kept. What remains is a submission that froze a file
        more than the grace period ago and has not committed yet: none lasts that long (README:
        "More than one host")."""
        removed = 0
        for candidate in candidates:
            entry = candidate.path
            if not (entry.name.startswith(".tmp-") or entry.name not in referenced):
                continue
            faults.pause_at("sweep.unlink")
            try:
                now = entry.lstat()
            except FileNotFoundError:
                continue
            if (now.st_ino, now.st_mtime_ns) != (candidate.inode, candidate.mtime_ns):
                continue  # frozen again since it was listed: another replica's, on its way to a row
            entry.unlink(missing_ok=True)
            removed += 1
        return removed


def create_once(path: Path, content: bytes) -> bytes:
    """The content of ``path``, written as ``content`` (mode 0600, fsynced) if it does not exist yet.

    Replicas sharing a folder may both find nothing and write: each writes in full under a name of
    its own, then links it to the shared name, which only the first link gets; the others read the
    winner's. No replica reads a half-written file, and all end with the same content."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        mine = partial_beside(path)
        fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.link(mine, path)
        except FileExistsError:
            pass  # another replica's came first
        finally:
            mine.unlink()
    return path.read_bytes()


def _writer_is_gone(name: str) -> bool:
    """Whether ``name`` is a temp file (``temporary_name``) of a process of this host that has
    ended; another host's temp files wait for the grace period, their writer's life unknown here."""
    if not name.startswith(".tmp-"):
        return False
    writer = name.removeprefix(".tmp-").rpartition("-")[0]  # host-pid, without the random part
    host, _, pid = writer.rpartition("-")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


_fsync_dir = fsync_path


