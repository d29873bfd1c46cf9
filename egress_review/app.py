"""The egress review service: pages and a JSON API at ``/services/egress/``, one code path.

People sign in to the pages through the hub (HubOAuth); the JSON API takes JupyterHub API tokens
(``Authorization: token …``), which the same ``HubOAuthenticated`` accepts, and is exempt from the
XSRF check only when the request was token-authenticated. Pages and API call the same functions of
``egress_review.requests.Airlock``, in worker threads; its refusals become 400, 403, 404 or 409
with a message that says what to do (JSON ``{"error": …}`` for the API, a page for people).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from markupsafe import Markup
from tornado.web import Application, HTTPError, RequestHandler

from datasets.i18n import negotiate, translate
from egress_review import checks, render
from egress_review.checks import i18n as check_words
from egress_review.requests import Airlock, BadInput, Forbidden, NotFound
from egress_review.store import PathRefused
from egress_review.text import said_in
from egress_review.workflow import AWAITING_CHECKERS, StateConflict

TEMPLATES = Path(__file__).resolve().parent / "templates"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
T = TypeVar("T")

PAGE_HEADERS = {
    # The hub's style sheet and images from this origin, frames only for the sandboxed file views;
    # no script at all.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
                               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie, Authorization",
}
STATUS_OF = {BadInput: 400, PathRefused: 400, Forbidden: 403, NotFound: 404, StateConflict: 409}
STATE_TEXT = {
    "draft": "Draft", "submitted": "Submitted", "partially_reviewed": "Partially reviewed",
    "reviewed": "Reviewed", "returned": "Returned to the researcher", "approved": "Approved, being released",
    "released": "Released", "rejected": "Rejected", "withdrawn": "Withdrawn",
}
DECISION_TEXT = {"approve": "Approve", "reject": "Reject", "changes_requested": "Changes requested"}
KIND_TEXT = {"output": "Output (to release)", "supporting": "Supporting (for the checkers only)"}
OUTCOME_TEXT = {"pass": "Pass", "review": "Needs review", "fail": "Fail"}
VOCABULARY = (*STATE_TEXT.values(), *DECISION_TEXT.values(), *KIND_TEXT.values(), *OUTCOME_TEXT.values(),
              *checks.DESCRIPTIONS.values())


class Site:
    """What every handler shares: the airlock, the URLs and the templates."""

    def __init__(self, airlock: Airlock, *, prefix: str, hub_prefix: str) -> None:
        self.airlock = airlock
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.hub_prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
        self.templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                                     undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    async def run(self, act: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an act of the airlock in a worker thread: the event loop never waits on disk or database."""
        return await asyncio.to_thread(act, *args, **kwargs)

    def render(self, template: str, language: str, **values: Any) -> str:
        def text(message: str, **params: Any) -> str:
            return translate(language, message, **params)

        def said(found: dict[str, Any]) -> str:
            return check_words.said(found, language)

        def said_param(found: dict[str, Any], name: str) -> str:
            return check_words.said_param(found, name, language)

        return self.templates.get_template(template).render(
            _=text, lang=language, prefix=self.prefix, hub_prefix=self.hub_prefix, STATE_TEXT=STATE_TEXT,
            DECISION_TEXT=DECISION_TEXT, KIND_TEXT=KIND_TEXT, view_kind=render.view_kind, OUTCOME_TEXT=OUTCOME_TEXT,
            outcome=checks.outcome, CHECK_TEXT=checks.DESCRIPTIONS, said=said, said_param=said_param, **values)


class Base(HubOAuthenticated, RequestHandler):
    """Who is asking (from the hub), in which language; the airlock's refusals as HTTP errors."""

    def initialize(self, site: Site) -> None:
        self.site = site

    def set_default_headers(self) -> None:
        self.language = negotiate(self.request.headers.get("Accept-Language"))
        self.set_header("Content-Language", self.language)
        for name, value in PAGE_HEADERS.items():
            self.set_header(name, value)

    def bears_token(self) -> bool:
        scheme = self.request.headers.get("Authorization", "").partition(" ")[0].lower()
        return scheme in ("token", "bearer")

    async def ask_hub(self) -> None:
        """Ask the hub who this is (token first, then cookie) without blocking the event loop;
        HubAuthenticated's get_current_user then reads the cached answer and checks the scopes."""
        await self.hub_auth.get_user(self, sync=False)

    async def prepare(self) -> None:
        await self.ask_hub()
        if self.bears_token() and not self.token_authenticated:
            # Never fall back to the cookie when a token was sent: the XSRF check relied on the token.
            raise HTTPError(403, "%s", self.text(
                "The hub did not accept this API token; create a new one on the hub's token page."))

    @property
    def token_authenticated(self) -> bool:
        return bool(getattr(self, "_token_authenticated", False))

    def check_xsrf_cookie(self) -> None:
        if self.bears_token():
            return  # a browser never adds this header cross-site; prepare checks the token itself
        try:
            super().check_xsrf_cookie()
        except HTTPError:
            raise HTTPError(403, "%s", self.text(
                "This form has expired or did not come from these pages. Go back, reload the page and send "
                "the form again.")) from None

    def text(self, message: str, **params: Any) -> str:
        return translate(self.language, message, **params)

    @property
    def username(self) -> str:
        return self.current_user["name"]

    async def act(self, act: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """An act of the airlock as this person; its refusal becomes the matching HTTP error."""
        try:
            return await self.site.run(act, self.username, *args, **kwargs)
        except tuple(STATUS_OF) as refused:
            status = next(code for kind, code in STATUS_OF.items() if isinstance(refused, kind))
            said = said_in(self.language, refused.args[0] if refused.args else str(refused))
            raise HTTPError(status, "%s", said) from None

    def error_message(self, status_code: int, kwargs: dict[str, Any]) -> str | None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, HTTPError) and status_code < 500 and exc.log_message:
            return exc.log_message % exc.args if exc.args else exc.log_message
        return None

    def send_file(self, path: Path, name: str, *, inline: bool = False, content_type: str | None = None,
                  data: bytes | None = None) -> None:
        """A file as a download (attachment unless an image shown inline), never sniffed."""
        self.set_header("Content-Type", content_type or "application/octet-stream")
        disposition = "inline" if inline else "attachment"
        self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(name, safe='')}")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.finish(data if data is not None else path.read_bytes())


# --- JSON API -------------------------------------------------------------------------------------------------


class Api(Base):
    """The JSON API: token or cookie, JSON in, JSON out, errors as ``{"error": "what to do"}``."""

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Type", "application/json; charset=utf-8")

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            raise HTTPError(403, "%s", self.text(
                "Sign in first: send a JupyterHub API token in the header “Authorization: token …”, "
                "or use the pages at {prefix}.", prefix=self.site.prefix))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise HTTPError(400, "%s", "The body is not JSON; send a JSON object.") from None
        if not isinstance(data, dict):
            raise HTTPError(400, "%s", "The body must be a JSON object.")
        return data

    def field(self, data: dict[str, Any], name: str, kind: type = str, default: Any = ...) -> Any:
        value = data.get(name, default)
        if value is ...:
            raise HTTPError(400, "%s", f"The field “{name}” is missing; see {self.site.prefix}api/openapi.json.")
        if value is not None and not isinstance(value, kind):
            raise HTTPError(400, "%s", f"The field “{name}” must be a {kind.__name__}.")
        return value

    def reply(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(value, default=str))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self.error_message(status_code, kwargs) or (
            "There is no such endpoint; see the OpenAPI document." if status_code == 404 else
            "Something went wrong on our side; try again, and tell the administrators if it goes on.")
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"error": message}))


class ApiRequests(Api):
    async def get(self) -> None:
        views = await self.act(self.site.airlock.list_requests)
        self.reply({"requests": [v.as_json() for v in views]})

    async def post(self) -> None:
        data = self.body()
        request_id = await self.act(self.site.airlock.create, self.field(data, "project"),
                                    self.field(data, "title"))
        self.reply((await self.act(self.site.airlock.get, request_id)).as_json(), 201)


class ApiRequest(Api):
    async def get(self, request_id: str) -> None:
        self.reply((await self.act(self.site.airlock.get, int(request_id))).as_json())


class ApiFiles(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        file_id = await self.act(
            self.site.airlock.add_file, int(request_id), self.field(data, "path"), self.field(data, "group"),
            self.field(data, "kind"), self.field(data, "context", default=None),
            self.field(data, "controls", default=None))
        self.reply({"file": file_id, "request": (await self.act(self.site.airlock.get, int(request_id))).as_json()},
                   201)


class ApiSubmit(Api):
    async def post(self, request_id: str) -> None:
        await self.act(self.site.airlock.submit, int(request_id))
        self.reply((await self.act(self.site.airlock.get, int(request_id))).as_json())


class ApiReviews(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        decisions = self.field(data, "decisions", dict)
        try:
            parsed = {int(k): str(v) for k, v in decisions.items()}
        except ValueError:
            raise HTTPError(400, "%s", "“decisions” maps file ids to approve, reject or changes_requested.") from None
        comments = []
        for entry in self.field(data, "comments", list, default=[]):
            if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
                raise HTTPError(400, "%s", "Each comment is an object with “text”, and optionally “file” "
                                           "and “visible_to_researcher”.")
            comments.append((entry.get("file"), entry["text"], bool(entry.get("visible_to_researcher", False))))
        seen = self.field(data, "sha256", dict, default={})
        try:
            seen_parsed = {int(k): str(v) for k, v in seen.items()}
        except ValueError:
            raise HTTPError(400, "%s", "“sha256” maps file ids to the sha256 you reviewed.") from None
        await self.act(self.site.airlock.review, int(request_id), parsed, comments, seen_parsed)
        self.reply((await self.act(self.site.airlock.get, int(request_id))).as_json())


class ApiDecision(Api):
    """return, reject, release (checkers) and withdraw (the author): one handler per path."""

    step = ""

    async def post(self, request_id: str) -> None:
        data = self.body()
        airlock, rid = self.site.airlock, int(request_id)
        if self.step == "withdraw":
            await self.act(airlock.withdraw, rid)
        elif self.step == "release":
            await self.act(airlock.release, rid)
        else:
            act = airlock.return_ if self.step == "return" else airlock.reject
            await self.act(act, rid, self.field(data, "comment", default=""))
        self.reply((await self.act(airlock.get, rid)).as_json())


class ApiComments(Api):
    async def post(self, request_id: str) -> None:
        data = self.body()
        await self.act(self.site.airlock.comment, int(request_id), self.field(data, "text"),
                       visible_to_researcher=bool(self.field(data, "visible_to_researcher", bool, default=True)),
                       file_id=self.field(data, "file", int, default=None))
        self.reply((await self.act(self.site.airlock.get, int(request_id))).as_json(), 201)


class ApiReleased(Api):
    async def get(self, request_id: str, filename: str) -> None:
        path = await self.act(self.site.airlock.released_file, int(request_id), filename)
        self.send_file(path, filename)


class ApiOpenApi(RequestHandler):
    """The API's description, readable without signing in (it holds no data)."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(OPENAPI.read_bytes())


def _decision_handler(step: str) -> type[ApiDecision]:
    return type(f"Api{step.title()}", (ApiDecision,), {"step": step})


# --- pages --------------------------------------------------------------------------------------------------


class Page(Base):
    page_name = ""

    async def prepare(self) -> None:
        await super().prepare()
        if self.current_user is None:
            if self.request.method in ("GET", "HEAD"):
                self.redirect(self.get_login_url())
                return
            raise HTTPError(403, "%s", self.text("Sign in first, then send the form again."))
        self.waiting = await self.site.run(self.site.airlock.waiting_count, self.username)

    def show(self, template: str, status: int = 200, **values: Any) -> None:
        self.set_status(status)
        self.finish(self.site.render(template, self.language, page=self.page_name, user=self.current_user,
                                     waiting=getattr(self, "waiting", 0),
                                     xsrf_form_html=lambda: Markup(self.xsrf_form_html()), **values))

    def see_other(self, path: str, **query: str) -> None:
        self.redirect(self.site.prefix + path + ("?" + urlencode(query) if query else ""), status=303)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(self.site.render(
            "error.html", self.language, page="", user=getattr(self, "_hub_auth_user_cache", None),
            waiting=getattr(self, "waiting", 0), status_code=status_code, reason=self._reason,
            message=self.error_message(status_code, kwargs)))


class HomePage(Page):
    page_name = "home"

    async def get(self) -> None:
        views = await self.act(self.site.airlock.list_requests)
        projects = set(await self.act(self.site.airlock.my_projects))
        mine = [v for v in views if v.project in projects]
        queue = await self.act(self.site.airlock.queue)
        self.show("home.html", requests=mine, queue=queue)


class NewRequestPage(Page):
    page_name = "new"

    async def get(self) -> None:
        self.show("new.html", projects=await self.act(self.site.airlock.my_projects), problem=None, title="")

    async def post(self) -> None:
        project, title = self.get_body_argument("project", ""), self.get_body_argument("title", "")
        try:
            request_id = await self.act(self.site.airlock.create, project, title)
        except HTTPError as refused:
            if refused.status_code != 400:
                raise
            self.show("new.html", 400, projects=await self.act(self.site.airlock.my_projects),
                      problem=refused.log_message % refused.args, title=title)
            return
        self.see_other(f"requests/{request_id}")


class RequestPage(Page):
    """A request as the researcher sees it: state, groups, files, comments, and what they may do."""

    page_name = "request"

    async def get(self, request_id: str) -> None:
        view = await self.act(self.site.airlock.get, int(request_id))
        folder = self.get_query_argument("folder", "")
        entries, browse_problem = [], None
        if view.may_edit:
            try:
                entries = await self.act(self.site.airlock.browse, view.project, folder)
            except HTTPError as refused:
                browse_problem = refused.log_message % refused.args
        self.show("request.html", request=view, folder=folder.strip("/"), entries=entries,
                  browse_problem=browse_problem, done=self.get_query_argument("done", ""))


class RequestFormPage(Page):
    """Every form of a request's page posts here; each goes back to the page with what happened."""

    async def post(self, request_id: str, step: str) -> None:
        rid, airlock, arg = int(request_id), self.site.airlock, self.get_body_argument
        back = f"reviews/{rid}" if step in ("reviews", "return", "reject", "release") else f"requests/{rid}"
        if step == "files":
            await self.act(airlock.add_file, rid, arg("path", ""), arg("group", ""), arg("kind", ""),
                           arg("context", "") or None, arg("controls", "") or None)
        elif step == "group":
            await self.act(airlock.set_group, rid, arg("group", ""), arg("context", ""), arg("controls", ""))
        elif step == "replace":
            await self.act(airlock.replace_file, rid, int(arg("file", "0") or 0))
        elif step == "comments":
            await self.act(airlock.comment, rid, arg("text", ""),
                           visible_to_researcher=arg("visible_to_researcher", "") == "on" or
                           arg("visible_to_researcher", "") == "true")
        elif step == "submit":
            await self.act(airlock.submit, rid)
        elif step == "withdraw":
            await self.act(airlock.withdraw, rid)
        elif step == "reviews":
            decisions = {int(name.removeprefix("decision-")): value[0].decode()
                         for name, value in self.request.body_arguments.items() if name.startswith("decision-")}
            comments = [(None, arg("comment", ""), arg("visible_to_researcher", "") == "on")]
            seen = {int(name.removeprefix("seen-")): value[0].decode()
                    for name, value in self.request.body_arguments.items() if name.startswith("seen-")}
            await self.act(airlock.review, rid, decisions, comments, seen)
        elif step == "return":
            await self.act(airlock.return_, rid, arg("comment", ""))
        elif step == "reject":
            await self.act(airlock.reject, rid, arg("comment", ""))
        elif step == "release":
            await self.act(airlock.release, rid)
        self.see_other(back, done=step)


class QueuePage(Page):
    page_name = "queue"

    async def get(self) -> None:
        self.show("queue.html", queue=await self.act(self.site.airlock.queue))


class ReviewPage(Page):
    """A checker's page for one request: each file shown, its checks, and the review form."""

    page_name = "queue"

    async def get(self, request_id: str) -> None:
        view = await self.act(self.site.airlock.get, int(request_id))
        shown: dict[int, dict[str, Any]] = {}
        # contents only while the request awaits its checkers (the airlock refuses them otherwise)
        for f in view.files if view.state in AWAITING_CHECKERS else ():
            if f.sha256 is None:
                continue
            kind = render.view_kind(f.name)
            entry: dict[str, Any] = {"kind": kind}
            if kind in ("table", "text"):
                _, path = await self.act(self.site.airlock.frozen_file, view.id, f.id)
                if kind == "table":
                    entry["rows"], entry["more"] = await self.site.run(render.table_rows, path, f.name)
                else:
                    entry["text"], entry["more"] = await self.site.run(render.text_of, path)
            entry["flagged"] = flagged_cells(f.checks)
            shown[f.id] = entry
        self.show("review.html", request=view, shown=shown, done=self.get_query_argument("done", ""))


def flagged_cells(results: list[dict[str, Any]]) -> dict[tuple[int, int], list[str]]:
    """The cells each failing or to-review rule names, for highlighting: (row, column) to rule ids."""
    cells: dict[tuple[int, int], list[str]] = {}
    for found in results:
        if found.get("status") == "pass":
            continue
        for cell in (found.get("details") or {}).get("cells", []):
            cells.setdefault((int(cell["row"]), int(cell["col"])), []).append(found["rule"])
    return cells


class FileContent(Page):
    """A frozen file for reviewing: ``download`` (CSV neutralised), ``image`` inline, ``view`` sandboxed."""

    async def get(self, request_id: str, file_id: str, how: str) -> None:
        name, path = await self.act(self.site.airlock.frozen_file, int(request_id), int(file_id))
        ext = render.suffix(name)
        if how == "image" and ext in render.IMAGES:
            self.send_file(path, name, inline=True, content_type=render.IMAGES[ext])
        elif how == "view":
            if render.view_kind(name) != "notebook":
                raise HTTPError(404, "%s", self.text("Only notebooks are rendered; download the file instead."))
            html = await self.site.run(render.notebook_html, path)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Content-Security-Policy", render.SANDBOX_CSP)
            self.finish(html)
        elif how == "download":
            data = await self.site.run(path.read_bytes)
            if ext in render.TABLES:
                data = render.neutralise_csv(data, render.TABLES[ext])
            self.send_file(path, name, data=data,
                           content_type="text/csv; charset=utf-8" if ext in render.TABLES else None)
        else:
            raise HTTPError(404)


class ReleasedFile(Page):
    async def get(self, request_id: str, filename: str) -> None:
        path = await self.act(self.site.airlock.released_file, int(request_id), filename)
        self.send_file(path, filename, content_type=mimetypes.guess_type(filename)[0])


class ReleasedZip(Page):
    async def get(self, request_id: str) -> None:
        data = await self.act(self.site.airlock.released_zip, int(request_id))
        self.send_file(Path(), f"request-{int(request_id)}.zip", content_type="application/zip", data=data)


class NotFoundPage(Page):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404, "%s", self.text("There is no such page. The links at the top lead to your requests."))

    post = get


class NotFoundApi(Api):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404, "%s", "There is no such endpoint; see the OpenAPI document at api/openapi.json.")

    post = get


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
    r"requests/(\d+)": RequestPage,
    r"requests/(\d+)/(files|group|replace|comments|submit|withdraw|reviews|return|reject|release)": RequestFormPage,
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
