"""Is a dataset on disk still what the catalogue registered? Checked before every mount.

A folder that resolves outside the data root, a symbolic link leading out of it, a file added or
removed, or a file whose sha256 differs from the registered one: the dataset is not mounted.
Hashes are cached per file version (inode, size, modification time) for the life of the process,
so a large dataset is read once, not at every start.
"""

from __future__ import annotations

import threading
from pathlib import Path

from datasets.catalogue import sha256_of


class DatasetIntegrityError(Exception):
    def __init__(self, dataset: str, problem: str) -> None:
        self.dataset, self.problem = dataset, problem
        super().__init__(f"dataset {dataset}: {problem}")


_cache: dict[tuple[str, int, int, int], str] = {}
_lock = threading.Lock()


def _cached_sha256(path: Path) -> str:
    info = path.stat()
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    with _lock:
        if key in _cache:
            return _cache[key]
    digest = sha256_of(path)
    with _lock:
        _cache[key] = digest
    return digest


def verify_dataset_folder(dataset: str, data_root: Path, folder: Path, expected: dict[str, str]) -> None:
    root = data_root.resolve()
    real = folder.resolve()
    if not real.is_relative_to(root):
        raise DatasetIntegrityError(dataset, f"its folder leads outside the data root (to {real})")
    if not real.is_dir():
        raise DatasetIntegrityError(dataset, f"its folder {folder} is missing")
    for path in real.rglob("*"):
        if path.is_symlink() and not path.resolve().is_relative_to(real):
            raise DatasetIntegrityError(dataset, f"{path.name} is a link to {path.resolve()}, outside the dataset")
    present = {p.name for p in real.iterdir() if p.is_file() and not p.name.startswith(".")}
    if present != set(expected):
        added, missing = sorted(present - set(expected)), sorted(set(expected) - present)
        raise DatasetIntegrityError(dataset, "files changed since registration"
                                    + (f"; added: {', '.join(added)}" if added else "")
                                    + (f"; missing: {', '.join(missing)}" if missing else ""))
    for name, digest in expected.items():
        if _cached_sha256(real / name) != digest:
            raise DatasetIntegrityError(dataset, f"{name} does not match its registered sha256")


def clear_cache() -> None:
    with _lock:
        _cache.clear()
