"""The hub's own pages and API as a web probe should find them: no version banners, cookies that
stay on this site (and on HTTPS only when served over TLS), HSTS there, no sniffing, and a CSP.

JupyterHub announces its version in an ``X-JupyterHub-Version`` header on every response and in the
unauthenticated ``GET /hub/api/``; Tornado adds ``Server: TornadoServer/…``. A scanner reads them to
pick exploits, so the hub keeps them to clients that show a valid token: the header survives only
on a successful response to a request with an ``Authorization`` header (workspaces and services
compare versions that way), and ``/hub/api/`` answers ``{}`` to anyone not signed in. The root API
handler is put in front of the hub's own through the authenticator's handlers, the one place
JupyterHub lets a handler take precedence over its defaults.
"""

from __future__ import annotations

import json
from typing import Any

from jupyterhub._version import __version__
from jupyterhub.apihandlers.hub import RootAPIHandler
from tornado.web import OutputTransform

# The hub's templates carry inline scripts and styles (jhdata, require.js config); everything else
# from this origin only, nothing framed, no plugin, forms to the hub only.
HUB_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
           "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
           "form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=63072000"


class QuietHeaders(OutputTransform):
    """Drops ``Server`` always, and ``X-JupyterHub-Version`` unless a token-bearing request succeeded."""

    def __init__(self, request) -> None:
        super().__init__(request)
        self.request = request

    def transform_first_chunk(self, status_code, headers, chunk, finishing):
        headers.pop("Server", None)
        if status_code >= 400 or not self.request.headers.get("Authorization"):
            headers.pop("X-JupyterHub-Version", None)
        return status_code, headers, chunk


class QuietRootAPIHandler(RootAPIHandler):
    """``GET /hub/api/``: the version to a signed-in person, service or workspace only."""

    def get(self) -> None:
        self.finish(json.dumps({"version": __version__} if self.current_user else {}))


class QuietVersion:
    """Mixed into the authenticators: their handlers come before the hub's defaults."""

    def get_handlers(self, app) -> list[tuple]:
        return [(r"/api/?", QuietRootAPIHandler), *super().get_handlers(app)]


def tornado_settings(*, tls: bool) -> dict[str, Any]:
    """``c.JupyterHub.tornado_settings``: headers on every hub page, cookie options, the transform."""
    headers = {"Content-Security-Policy": HUB_CSP, "X-Content-Type-Options": "nosniff",
               "Referrer-Policy": "same-origin"}
    cookies: dict[str, Any] = {"samesite": "Lax"}
    if tls:
        headers["Strict-Transport-Security"] = HSTS
        cookies["secure"] = True
    return {"headers": headers, "cookie_options": cookies, "xsrf_cookie_kwargs": dict(cookies),
            "transforms": [QuietHeaders]}
