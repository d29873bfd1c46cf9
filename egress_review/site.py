"""What every handler of the egress service shares: the site (airlock, URLs, templates) and the
base handler (who is asking, in which language, the airlock's refusals as HTTP errors).

People sign in to the pages through the hub (HubOAuth); the JSON API takes JupyterHub API tokens
(``Authorization: token …``), which the same ``HubOAuthenticated`` accepts, and is exempt from the
XSRF check only when the request was token-authenticated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from babel.dates import format_datetime

from sqlalchemy.exc import InterfaceError, OperationalError
from tornado.web import HTTPError

from hub.webkit.pages import KitPage, KitSite, security_headers
from tre_core.i18n import _messages, translate
from egress_review import checks, render
from egress_review.checks import i18n as check_words
from egress_review.checks.i18n import Msg
from egress_review.errors import BadInput, Forbidden, NotFound, StateConflict
from egress_review.logic import Airlock
from egress_review.store import PathRefused, StoreFull

TEMPLATES = Path(__file__).resolve().parent / "templates"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
T = TypeVar("T")
log = logging.getLogger("tre.egress")
check_words.use_catalogue(_messages)  # refusals and check results said through the platform's catalogue
MAX_ID = 2**31 - 1  # ids are SQL integers: a larger number names nothing and is refused before the query

STATUS_OF = {BadInput: 400, PathRefused: 400, Forbidden: 403, NotFound: 404, StateConflict: 409, StoreFull: 503}
# The database restarting or out of reach: a 503 that says so, not a 500 with a stack trace.
DATABASE_UNREACHABLE = ("The TRE's database cannot be reached just now, so this was not done. Look at the request "
                        "again in a minute before doing it again; if this lasts, tell the TRE's operators.")
STATE_TEXT = {
    "draft": "Draft", "submitted": "Submitted", "partially_reviewed": "Partially reviewed",
    "reviewed": "Reviewed", "returned": "Returned to the researcher", "approved": "Approved, being released",
    "released": "Released", "rejected": "Rejected", "withdrawn": "Withdrawn",
}
DECISION_TEXT = {"approve": "Approve", "reject": "Reject", "changes_requested": "Changes requested"}
# A decision taken, as it reads once made ("Approuvé", not the verb of the form's choice)
DECIDED_TEXT = {"approve": "Approved", "reject": "Refused", "changes_requested": "Changes requested"}
# One colour per state, on every page (Bootstrap's badge classes, from the hub's style sheet)
STATE_BADGE = {
    "draft": "text-bg-secondary", "submitted": "text-bg-info", "partially_reviewed": "text-bg-info",
    "reviewed": "text-bg-primary", "returned": "text-bg-warning", "approved": "text-bg-success",
    "released": "text-bg-success", "rejected": "text-bg-danger", "withdrawn": "text-bg-dark",
}
OUTCOME_BADGE = {"pass": "text-bg-success", "review": "text-bg-warning", "fail": "text-bg-danger"}
# Timestamps are shown in the TRE's own time zone (French health data: Paris), the ISO value in UTC beside.
SHOWN_ZONE = ZoneInfo(os.environ.get("TRE_DISPLAY_TIMEZONE", "Europe/Paris"))
KIND_TEXT = {"output": "Output (to release)", "supporting": "Supporting (for the checkers only)"}
OUTCOME_TEXT = {"pass": "Pass", "review": "Needs review", "fail": "Fail"}
VOCABULARY = (*STATE_TEXT.values(), *DECISION_TEXT.values(), *DECIDED_TEXT.values(), *KIND_TEXT.values(), *OUTCOME_TEXT.values(),
              *checks.DESCRIPTIONS.values())


class Site(KitSite):
    """What every handler shares: the airlock, the URLs and the templates (the web kit's, then ours)."""

    def __init__(self, airlock: Airlock, *, prefix: str, hub_prefix: str) -> None:
        super().__init__(TEMPLATES, prefix=prefix, hub_prefix=hub_prefix)
        self.airlock = airlock

    async def run(self, act: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run an act of the airlock in a worker thread: the event loop never waits on disk or database."""
        return await asyncio.to_thread(act, *args, **kwargs)

    def page_values(self, language: str) -> dict[str, Any]:
        def said(found: dict[str, Any]) -> str:
            return check_words.said(found, language)

        def said_param(found: dict[str, Any], name: str) -> str:
            return check_words.said_param(found, name, language)

        def when(iso: str | None) -> str:
            return moment(iso, language)

        def summary_line(results: list[dict[str, Any]]) -> str:
            return file_summary(results, language)

        def refusal(message: Any) -> str:
            return message.said_in(language) if isinstance(message, Msg) else str(message or "")

        return dict(STATE_TEXT=STATE_TEXT, DECISION_TEXT=DECISION_TEXT, KIND_TEXT=KIND_TEXT,
                    view_kind=render.view_kind, OUTCOME_TEXT=OUTCOME_TEXT, outcome=checks.outcome,
                    CHECK_TEXT=checks.DESCRIPTIONS, said=said, said_param=said_param, DECIDED_TEXT=DECIDED_TEXT,
                    STATE_BADGE=STATE_BADGE, OUTCOME_BADGE=OUTCOME_BADGE, when=when, refusal=refusal,
                    cell_name=cell_name, summary_line=summary_line, short_sha=short_sha)


def moment(iso: str | None, language: str) -> str:
    """An ISO timestamp as people read it in their language ("5 déc. 2026, 09:12:03")."""
    if not iso:
        return ""
    value = dt.datetime.fromisoformat(iso)
    if value.tzinfo is None:  # SQLite gives back naive values; every timestamp is stored in UTC
        value = value.replace(tzinfo=dt.UTC)
    return format_datetime(value, format="medium", tzinfo=SHOWN_ZONE, locale=language)


def short_sha(sha256: str | None) -> str:
    return f"{sha256[:12]}…" if sha256 else ""


def file_summary(results: list[dict[str, Any]], language: str) -> str:
    """One line per file, like Airlock's summary of a CSV: its rows, the rules and how they went, the
    cells flagged ("4 rows · 3 rules: 2 pass, 0 to review, 1 fail · 1 flagged cell")."""
    said = [translate(language, "{count} rules: {passed} pass, {review} to review, {failed} fail",
                      count=len(results), **{k: sum(r.get("status") == s for r in results)
                                             for k, s in (("passed", "pass"), ("review", "review"),
                                                          ("failed", "fail"))})]
    rows = next((r["details"]["rows"] for r in results if r.get("rule") == "microdata"
                 and isinstance((r.get("details") or {}).get("rows"), int)), None)
    if rows is not None:
        said.insert(0, translate(language, "1 row") if rows == 1 else translate(language, "{rows} rows", rows=rows))
    cells = sum(len((r.get("details") or {}).get("cells", [])) for r in results if r.get("status") != "pass")
    if cells:
        said.append(translate(language, "1 flagged cell") if cells == 1 else
                    translate(language, "{count} flagged cells", count=cells))
    return " · ".join(said)


def cell_name(cell: dict[str, Any]) -> str:
    """A flagged cell named as people read the table: row label and column name ("Occitanie / 40-59,
    stays"), falling back to the numbers for results stored before cells were named."""
    parts = [cell.get("label") or "", cell.get("column") or ""]
    named = ", ".join(p for p in parts if p)
    return named or f"({cell['row']}, {cell['col']})"


class Base(KitPage):
    """Who is asking (from the hub: a token or the page's cookie), in which language; the airlock's
    refusals as HTTP errors. Headers, XSRF refusal, pages and error pages are the web kit's."""

    # sandboxed frames for the file views; the API answers differ by token too
    headers = security_headers(frames=True, vary="Accept-Language, Cookie, Authorization")
    site: Site

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
        super().check_xsrf_cookie()

    def ident(self, value: str) -> int:
        """A request or file id from the URL or a form: a number the database can hold, else 400."""
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_ID:
            raise HTTPError(400, "%s", self.text(
                "“{value}” is not the number of an export request or of one of its files; follow the links of "
                "these pages.", value=value[:40]))
        return int(value)

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
            message = refused.args[0] if refused.args else str(refused)
            said = message.said_in(self.language) if isinstance(message, Msg) else str(message)
            error = HTTPError(status, "%s", said)
            error.field = getattr(refused, "field", None)  # the form field to show it beside, if known
            raise error from None
        except (OperationalError, InterfaceError) as unreachable:
            log.error("The database is unreachable: %s", unreachable.orig or unreachable)
            raise HTTPError(503, "%s", self.text(DATABASE_UNREACHABLE)) from None

    def send_file(self, path: Path, name: str, *, inline: bool = False, content_type: str | None = None,
                  data: bytes | None = None) -> None:
        """A file as a download (attachment unless an image shown inline), never sniffed."""
        self.send_headers(name, inline=inline, content_type=content_type)
        self.finish(data if data is not None else path.read_bytes())

    def send_headers(self, name: str, *, inline: bool = False, content_type: str | None = None) -> None:
        self.set_header("Content-Type", content_type or "application/octet-stream")
        disposition = "inline" if inline else "attachment"
        self.set_header("Content-Disposition", f"{disposition}; filename*=UTF-8''{quote(name, safe='')}")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")


