"""The demo's local login, clearly labelled as such: the people of the demo catalogue sign in with
one password generated for this installation and printed by the demo command.

Production signs people in through OAuthenticator's GenericOAuthenticator; whichever is used,
*who may do what* comes from the catalogue, so only people it lists may sign in at all.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from datasets import audit
from datasets.audit import AuditAction
from datasets.catalogue import known_people
from datasets.db import session_scope


def demo_password(secrets_dir: Path) -> str:
    """This installation's demo password, created on first use (readable by root only)."""
    path = secrets_dir / "demo-password"
    if not path.exists():
        secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(12) + "\n")
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()


class DemoAuthenticator(Authenticator):
    catalogue_url = Unicode(help="SQLAlchemy URL of the TRE catalogue.").tag(config=True)
    password_file = Unicode(help="File holding the demo password.").tag(config=True)

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        expected = (await asyncio.to_thread(Path(self.password_file).read_text)).strip()
        accepted = hmac.compare_digest(data.get("password", "").encode(), expected.encode())
        await asyncio.to_thread(self._audit, username, accepted, handler.request.remote_ip)
        return {"name": username} if accepted else None

    def _audit(self, username: str, accepted: bool, remote_ip: str) -> None:
        with session_scope(self.catalogue_url) as session:
            audit.record(session, username, AuditAction.LOGIN if accepted else AuditAction.LOGIN_FAILED,
                         details={"method": "demo-password", "remote_ip": remote_ip})

    async def check_allowed(self, username, authentication=None):
        return username in await asyncio.to_thread(self._catalogue_usernames)

    def _catalogue_usernames(self) -> set[str]:
        with session_scope(self.catalogue_url) as session:
            return set(known_people(session))
