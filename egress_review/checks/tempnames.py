"""Names for files written beside their final place and renamed into it.

Here rather than in ``egress_review.store`` because the checks package is also shipped alone into
the analysis image (``images/build.py``), where the identifier index cache uses it too."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path


def temporary_name() -> str:
    """A temp name no other process, on this host or another sharing the store, will choose."""
    return f".tmp-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(8)}"


def partial_beside(path: Path) -> Path:
    """Where to write ``path`` before renaming it into place: a name of this process's own, so two
    replicas writing the same file never write into one another's half-written copy."""
    return path.with_name(f".{path.name}{temporary_name()}")
