"""The demo's local login, clearly labelled as such: the people of the demo catalogue sign in with
one password generated for this installation and printed by the demo command.

Production signs people in through OAuthenticator's GenericOAuthenticator; whichever is used,
*who may do what* comes from the catalogue, so only people it lists may sign in at all.
"""

from __future__ import annotations

import asyncio
import hmac
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from datasets import audit
from datasets.audit import AuditAction
from datasets.catalogue import is_known
from tre_core.db import session_scope
from hub.auth.throttle import ThrottledSignIn
from hub.hardening import QuietVersion


class DemoAuthenticator(ThrottledSignIn, QuietVersion, Authenticator):
    catalogue_url = Unicode(help="SQLAlchemy URL of the TRE catalogue.").tag(config=True)
    password_file = Unicode(help="File holding the demo password.").tag(config=True)

    async def authenticate(self, handler, data):
        username = self.normalize_username(data.get("username", ""))
        self.check_throttle(handler, username)
        expected = (await asyncio.to_thread(Path(self.password_file).read_text)).strip()
        accepted = hmac.compare_digest(data.get("password", "").encode(), expected.encode())
        await asyncio.to_thread(self._audit, username, accepted, handler.request.remote_ip)
        self.sign_in_succeeded(username) if accepted else self.sign_in_failed(handler, username)
        return {"name": username} if accepted else None

    def _audit(self, username: str, accepted: bool, remote_ip: str) -> None:
        with session_scope(self.catalogue_url) as session:
            audit.record(session, username, AuditAction.LOGIN if accepted else AuditAction.LOGIN_FAILED,
                         details={"method": "demo-password", "remote_ip": remote_ip})

    async def check_allowed(self, username, authentication=None):
        return await asyncio.to_thread(self._in_catalogue, username)

    def _in_catalogue(self, username: str) -> bool:
        with session_scope(self.catalogue_url) as session:
            return is_known(session, username)
