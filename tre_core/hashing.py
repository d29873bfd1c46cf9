"""sha256 of a file, read in blocks: the one way the TRE fingerprints datasets and files."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

BLOCK = 1 << 20


def sha256_of(path: Path, advance: Callable[[int], None] | None = None) -> str:
    """The file's sha256 (hex); ``advance`` is told the size of each block read (a progress bar)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(BLOCK), b""):
            digest.update(block)
            if advance is not None:
                advance(len(block))
    return digest.hexdigest()
