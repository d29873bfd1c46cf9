"""The index's folders, written atomically: what pypiserver serves is only ever whole, checked files.

Every file is copied into a hidden staging folder on the same file system (pypiserver lists no
dot-folder), written, fsynced, its sha256 checked against the one the resolution promised, and
only when every file of a set has passed are they renamed into place (rename is atomic on one file
system) and the folder fsynced. A hash mismatch or a failed write leaves the served folders as they
were. Removal unlinks: pip stops finding the file at its next look.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from package_index.policy import ALLOWLIST_ROOT, APPROVED_ROOT
from tre_core.files import fsync_path

STAGING = ".incoming"


class HashMismatch(ValueError):
    """A fetched file whose sha256 is not the one the index promised; nothing was published."""


@dataclass(frozen=True)
class Artifact:
    path: Path  # where the fetch left it
    sha256: str  # what the upstream index said it is


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_fsync_dir = fsync_path


class IndexStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        if name not in (ALLOWLIST_ROOT, APPROVED_ROOT):
            raise ValueError(f"no index folder {name!r}")
        return self.root / name

    def ensure(self) -> None:
        for name in (ALLOWLIST_ROOT, APPROVED_ROOT):
            (self.folder(name) / STAGING).mkdir(parents=True, exist_ok=True)

    def publish(self, artifacts: list[Artifact], into: str) -> list[Path]:
        """Publish all of ``artifacts`` into folder ``into``, or none of them."""
        self.ensure()
        target = self.folder(into)
        staged: list[tuple[Path, Path]] = []
        try:
            for artifact in artifacts:
                name = artifact.path.name
                if "/" in name or name.startswith("."):
                    raise ValueError(f"refusing file name {name!r}")
                tmp = target / STAGING / f"{uuid.uuid4().hex}-{name}"
                with artifact.path.open("rb") as source, tmp.open("wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 20)
                    sink.flush()
                    os.fsync(sink.fileno())
                staged.append((tmp, target / name))
                actual = sha256_of(tmp)
                if actual != artifact.sha256.lower():
                    raise HashMismatch(
                        f"{name}: sha256 is {actual} but the index said {artifact.sha256}; the file was "
                        "changed on the way or upstream. Nothing was published; try again, and if it "
                        "happens again, tell the security team.")
        except BaseException:
            for tmp, _ in staged:
                tmp.unlink(missing_ok=True)
            raise
        for tmp, final in staged:
            os.replace(tmp, final)
        _fsync_dir(target)
        return [final for _, final in staged]

    def remove(self, filename: str) -> bool:
        removed = False
        for name in (ALLOWLIST_ROOT, APPROVED_ROOT):
            path = self.folder(name) / filename
            if path.is_file():
                path.unlink()
                _fsync_dir(path.parent)
                removed = True
        return removed

    def served(self) -> dict[str, list[str]]:
        """The file names each folder serves now."""
        return {name: sorted(p.name for p in self.folder(name).iterdir() if p.is_file() and not p.name.startswith("."))
                if self.folder(name).is_dir() else [] for name in (ALLOWLIST_ROOT, APPROVED_ROOT)}
