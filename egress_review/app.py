"""The egress review service: pages and a JSON API at ``/services/egress/``, one code path.

Pages (``pages``) and API (``api``) call the same acts of ``egress_review.logic.Airlock``, in
worker threads, through the shared base handler (``site``); the airlock's refusals become 400, 403,
404 or 409 with a message that says what to do (JSON ``{"error": …}`` for the API, a page for people).
"""

from __future__ import annotations

import re
import secrets

from jupyterhub.services.auth import HubOAuthCallbackHandler
from tornado.web import Application, RequestHandler

from egress_review.api import (ApiComments, ApiFiles, ApiOpenApi, ApiReleased, ApiRequest, ApiRequests, ApiReviews,
                               ApiSubmit, NotFoundApi, _decision_handler)
from egress_review.pages import (FileContent, HomePage, NewRequestPage, NotFoundPage, PanelPage, QueuePage,
                                 ReleasedFile, ReleasedZip, RequestFormPage, RequestPage, ReviewPage)
from egress_review.site import VOCABULARY, Base, Site

__all__ = ["API_ROUTES", "PAGE_ROUTES", "VOCABULARY", "Base", "Site", "make_app", "openapi_path"]

# --- the application ----------------------------------------------------------------------------------------

API_ROUTES: dict[str, type[RequestHandler]] = {
    r"api/requests": ApiRequests,
    r"api/requests/(\d+)": ApiRequest,
    r"api/requests/(\d+)/files": ApiFiles,
    r"api/requests/(\d+)/submit": ApiSubmit,
    r"api/requests/(\d+)/reviews": ApiReviews,
    r"api/requests/(\d+)/comments": ApiComments,
    r"api/requests/(\d+)/return": _decision_handler("return"),
    r"api/requests/(\d+)/reject": _decision_handler("reject"),
    r"api/requests/(\d+)/release": _decision_handler("release"),
    r"api/requests/(\d+)/withdraw": _decision_handler("withdraw"),
    r"api/requests/(\d+)/released/([^/]+)": ApiReleased,
    r"api/openapi.json": ApiOpenApi,
}
PAGE_ROUTES: dict[str, type[RequestHandler]] = {
    r"": HomePage,
    r"new": NewRequestPage,
    r"panel": PanelPage,
    r"requests/(\d+)": RequestPage,
    r"requests/(\d+)/(files|group|replace|remove|comments|submit|withdraw|reviews|return|reject|release)": RequestFormPage,
    r"queue": QueuePage,
    r"reviews/(\d+)": ReviewPage,
    r"requests/(\d+)/files/(\d+)/(download|image|view)": FileContent,
    r"requests/(\d+)/released/([^/]+)": ReleasedFile,
    r"requests/(\d+)/released\.zip": ReleasedZip,
}


def openapi_path(route: str) -> str:
    """``api/requests/(\\d+)/released/([^/]+)`` → ``/api/requests/{id}/released/{filename}``."""
    names = iter(("id", "filename"))
    return "/" + re.sub(r"\([^)]*\)", lambda _: "{" + next(names) + "}", route)


def make_app(site: Site, *, cookie_secret: bytes | None = None) -> Application:
    prefix = site.prefix
    handlers: list[tuple] = [(prefix + path + "$", handler, {} if handler is ApiOpenApi else {"site": site})
                             for path, handler in {**API_ROUTES, **PAGE_ROUTES}.items()]
    handlers.append((prefix + "oauth_callback", HubOAuthCallbackHandler))
    handlers.append((prefix + "api/.*", NotFoundApi, {"site": site}))
    return Application(
        handlers, default_handler_class=NotFoundPage, default_handler_args={"site": site},
        cookie_secret=cookie_secret or secrets.token_bytes(32), xsrf_cookies=True,
    )
