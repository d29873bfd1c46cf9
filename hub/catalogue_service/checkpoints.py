"""The audit log's signed checkpoints, published beside the public register so that anyone can keep
a copy off the host (``datasets.anchor``): the checkpoints file as it is, and the key that signs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tornado.web import HTTPError, RequestHandler

from datasets import anchor
from tre_core.settings import TRESettings


def newest(home: Path | None = None) -> dict[str, Any] | None:
    """The newest checkpoint (shown on the register page), or None before the first."""
    path = anchor.checkpoints_path(home or TRESettings().home)
    last = anchor._last_line(path) if path.exists() else None
    return json.loads(last) if last else None


class PublishedCheckpoints(RequestHandler):
    """``register/audit-checkpoints.jsonl`` and ``register/audit-key.pub``: no sign-in, no cache."""

    def get(self, name: str) -> None:
        settings = TRESettings()
        path = anchor.checkpoints_path(settings.home) if name == "audit-checkpoints.jsonl" \
            else settings.secrets_dir / f"{anchor.KEY_NAME}.pub"
        if not path.exists():
            raise HTTPError(404)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        self.finish(path.read_bytes())
