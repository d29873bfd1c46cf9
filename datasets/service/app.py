"""The catalogue pages: a Tornado application that the hub runs as its managed service
``catalogue``, at ``/services/catalogue/``.

People sign in through the hub with OAuth (``HubOAuthenticated``, as the hub's own service
examples do); the public register alone is readable without signing in. Pages are Jinja2 templates
in the hub's look, in the browser's language, with plain HTML forms protected against cross-site
requests, so everything works without JavaScript. Database calls run in worker threads, never on
the event loop; every change goes through ``datasets.workflow``, which audits it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import secrets
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

from babel.numbers import format_decimal
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tornado.web import Application, HTTPError, RequestHandler, authenticated

from datasets import workflow
from datasets.catalogue import Refusal
from datasets.db import session_scope
from datasets.i18n import negotiate, translate
from datasets.messages import REFUSALS
from datasets.models import SLUG
from datasets.service import forms, queries
from datasets.service.forms import Problem, Problems

TEMPLATES = Path(__file__).resolve().parent / "templates"
T = TypeVar("T")

# Words of the catalogue's vocabulary as people read them; the English text is the msgid.
IMAGE_STATUS_TEXT = {"active": "In use", "retired": "Retired"}
STATUS_TEXT = {
    "requested": "Awaiting a decision",
    "approved": "Approved",
    "active": "Active",
    "suspended": "Suspended",
    "closed": "Closed",
}
ROLE_TEXT = {"principal_investigator": "Principal investigator", "researcher": "Researcher"}
IDENTIFIER_TEXT = {"direct": "Direct identifier", "indirect": "Indirect identifier"}
SENSITIVITY_TEXT = {"pseudonymised": "pseudonymised", "anonymised": "anonymised", "open": "open"}
VOCABULARY = (*STATUS_TEXT.values(), *IMAGE_STATUS_TEXT.values(), *ROLE_TEXT.values(), *IDENTIFIER_TEXT.values(), *SENSITIVITY_TEXT.values())

SECURITY_HEADERS = {
    # Only the hub's style sheet, logo and fonts, from this origin (and the style sheet's inline
    # icons: check marks, validation marks); no script at all.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show who may see what; no shared cache keeps them.
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie",
}


class Site:
    """What every page shares: the catalogue database, the URLs, the templates and the clock."""

    def __init__(self, catalogue_url: str, *, prefix: str, hub_prefix: str,
                 today: Callable[[], dt.date] = dt.date.today) -> None:
        self.catalogue_url = catalogue_url
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.hub_prefix = hub_prefix if hub_prefix.endswith("/") else hub_prefix + "/"
        self.today = today
        self.templates = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                                     undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    async def catalogue(self, act: Callable[..., T], *args: Any) -> T:
        """Run ``act(session, *args)`` in one transaction, in a worker thread."""
        return await asyncio.to_thread(self._in_transaction, act, *args)

    def _in_transaction(self, act: Callable[..., T], *args: Any) -> T:
        with session_scope(self.catalogue_url) as session:
            return act(session, *args)

    def render(self, template: str, language: str, **values: Any) -> str:
        def text(message: str, **params: Any) -> str:
            return translate(language, message, **params)

        def problem(found: Problem) -> str:
            return translate(language, found.message, **found.params)

        def refusal(found: tuple[Refusal, dict[str, Any]]) -> str:
            reason, params = found
            return translate(language, REFUSALS[reason], **params)

        def number(value: int) -> str:
            return format_decimal(value, locale=language)

        return self.templates.get_template(template).render(
            _=text, problem=problem, refusal=refusal, number=number, lang=language,
            prefix=self.prefix, hub_prefix=self.hub_prefix, STATUS_TEXT=STATUS_TEXT, ROLE_TEXT=ROLE_TEXT,
            IDENTIFIER_TEXT=IDENTIFIER_TEXT, SENSITIVITY_TEXT=SENSITIVITY_TEXT, IMAGE_STATUS_TEXT=IMAGE_STATUS_TEXT,
            **values,
        )


class Page(HubOAuthenticated, RequestHandler):
    """A catalogue page: who is reading (from the hub), in which language, rendered how."""

    page_name = ""
    viewer: queries.Viewer | None = None

    def initialize(self, site: Site) -> None:
        self.site = site

    def set_default_headers(self) -> None:
        # Also called again before an error page is written, which then keeps these headers.
        self.language = negotiate(self.request.headers.get("Accept-Language"))
        self.set_header("Content-Language", self.language)
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def check_xsrf_cookie(self) -> None:
        try:
            super().check_xsrf_cookie()
        except HTTPError:
            raise HTTPError(403, "%s", translate(
                self.language, "This form has expired or did not come from these pages. Go back, reload the "
                "page and send the form again.")) from None

    async def prepare(self) -> None:
        # Ask the hub who this is without blocking the event loop; HubAuthenticated's
        # get_current_user then reads the answer that get_user caches on the handler.
        await self.hub_auth.get_user(self, sync=False)
        if self.current_user:
            self.viewer = await self.site.catalogue(queries.viewer, self.current_user["name"])

    @property
    def username(self) -> str:
        return self.current_user["name"]

    def show(self, template: str, status: int = 200, **values: Any) -> None:
        self.set_status(status)
        self.finish(self.site.render(
            template, self.language, page=self.page_name, user=self.current_user, viewer=self.viewer,
            xsrf_form_html=lambda: Markup(self.xsrf_form_html()), **values))

    def see_other(self, path: str, **query: str) -> None:
        """After a form is accepted, go to a page (POST, redirect, GET: a reload does not post again)."""
        self.redirect(self.site.prefix + path + ("?" + urlencode(query) if query else ""), status=303)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = None
        if isinstance(exc, HTTPError) and status_code < 500 and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        # Never ask the hub again here: the error may be that it did not answer.
        self.finish(self.site.render(
            "error.html", self.language, page="", user=getattr(self, "_current_user", None),
            viewer=self.viewer, status_code=status_code, reason=self._reason, message=message))


class CataloguePage(Page):
    page_name = "catalogue"

    @authenticated
    async def get(self) -> None:
        self.show("catalogue.html", datasets=await self.site.catalogue(queries.dataset_cards))


class ProjectsPage(Page):
    page_name = "projects"

    @authenticated
    async def get(self) -> None:
        projects = await self.site.catalogue(queries.my_projects, self.username, self.site.today())
        self.show("projects.html", projects=projects, applied=self.get_query_argument("applied", None),
                  spawn_prefix=f"{self.site.hub_prefix}spawn/{quote(self.username, safe='')}/")


def submit_application(session: Session, applicant: str, typed: forms.ApplicationInput) -> Problems:
    """Record the application, or say what is wrong with it (and record nothing)."""
    application, problems = forms.read_application(typed, queries.application_context(session), applicant)
    if application is None:
        return problems
    workflow.apply_for_project(session, applicant, application)
    return {}


class ApplyPage(Page):
    page_name = "apply"

    @authenticated
    async def get(self) -> None:
        await self._form(forms.ApplicationInput(), {})

    @authenticated
    async def post(self) -> None:
        typed = forms.ApplicationInput(
            **{name: self.get_body_argument(name, "") for name in (
                "slug", "title", "lay_summary", "purpose", "public_interest", "members", "starts_on", "ends_on")},
            datasets=self.get_body_arguments("datasets"),
        )
        try:
            problems = await self.site.catalogue(submit_application, self.username, typed)
        except workflow.WorkflowError as refused:  # the catalogue changed since it was read
            problems = {"form": Problem("The catalogue did not record the application: {reason}",
                                        {"reason": str(refused)})}
        except IntegrityError:  # the same short name, sent twice at the same moment
            problems = {"slug": Problem("A project called {slug} exists already; choose another short name.",
                                        {"slug": typed.slug.strip().lower()})}
        if problems:
            await self._form(typed, problems, status=400)
        else:
            self.see_other("projects", applied=typed.slug.strip().lower())

    async def _form(self, typed: forms.ApplicationInput, problems: Problems, status: int = 200) -> None:
        choices = await self.site.catalogue(queries.dataset_choices)
        self.show("apply.html", status, typed=typed, problems=problems, choices=choices)


class StewardPage(Page):
    """The queue of applications and the two decisions; only data stewards (and admins) see it."""

    page_name = "steward"

    def require_steward(self) -> bool:
        if not (self.viewer and self.viewer.is_steward):
            self.show("error.html", 403, status_code=403, reason="Forbidden", message=translate(
                self.language, "Only data stewards see the applications awaiting a decision. You are signed in "
                "as {username}, who is not a data steward; if you should be one, ask an administrator.",
                username=self.username))
            return False
        return True

    @authenticated
    async def get(self) -> None:
        if self.require_steward():
            notice = {k: self.get_query_argument(k, "") for k in ("approved", "refused")}
            await self._queue({}, {}, notice={k: v for k, v in notice.items() if re.fullmatch(SLUG, v)})

    async def _queue(self, typed: dict[str, Any], problems: dict[str, Problems], status: int = 200,
                     notice: dict[str, str] | None = None) -> None:
        queue = await self.site.catalogue(queries.steward_queue)
        approvals = {a.slug: forms.ApprovalInput(
            starts_on=a.starts_on.isoformat() if a.starts_on else "",
            ends_on=a.ends_on.isoformat() if a.ends_on else "") for a in queue}
        refusals = {a.slug: forms.RefusalInput() for a in queue}
        for slug, value in typed.items():
            (approvals if isinstance(value, forms.ApprovalInput) else refusals)[slug] = value
        self.show("steward.html", status, queue=queue, approvals=approvals, refusals=refusals,
                  problems=problems, notice=notice or {})


class DecisionPage(StewardPage):
    @authenticated
    async def post(self, slug: str, decision: str) -> None:
        if not self.require_steward():
            return
        if decision == "approve":
            typed: forms.ApprovalInput | forms.RefusalInput = forms.ApprovalInput(
                **{n: self.get_body_argument(n, "") for n in ("approval_reference", "starts_on", "ends_on")})
            approval, problems = forms.read_approval(typed)
            decide = partial(workflow.approve, **vars(approval)) if approval else None
        else:
            typed = forms.RefusalInput(reason=self.get_body_argument("reason", ""))
            reason, problems = forms.read_refusal(typed)
            decide = partial(workflow.refuse, reason=reason) if reason else None
        if decide is not None:
            try:
                await self.site.catalogue(decide, self.username, slug)
            except workflow.PermissionDenied as denied:  # the role was withdrawn meanwhile
                raise HTTPError(403, "%s", str(denied)) from None
            except workflow.WorkflowError as refused:
                problems = {"form": Problem("The catalogue did not record the decision: {reason}",
                                            {"reason": str(refused)})}
            else:
                self.see_other("steward", **{"approved" if decision == "approve" else "refused": slug})
                return
        await self._queue({slug: typed}, {slug: problems}, status=400)


class RegisterPage(Page):
    """The public register of approved projects: what the law asks to publish, without login."""

    page_name = "register"

    async def get(self) -> None:
        self.show("register.html", entries=await self.site.catalogue(queries.public_register))


class ImagesPage(Page):
    """The analysis images, for admins: what each holds, who runs it, how the last builds went.
    Read-only: images are built, pinned and retired with the ``tre`` command on the host."""

    page_name = "images"

    @authenticated
    async def get(self) -> None:
        if not (self.viewer and self.viewer.is_admin):
            self.show("error.html", 403, status_code=403, reason="Forbidden", message=translate(
                self.language, "Only admins see the analysis images. You are signed in as {username}, who is "
                "not an admin.", username=self.username))
            return
        self.show("images.html", registry=await self.site.catalogue(queries.image_registry))


class NotFound(Page):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404)

    post = get


def make_app(site: Site, *, cookie_secret: bytes | None = None) -> Application:
    prefix = site.prefix
    pages = {"": CataloguePage, "projects": ProjectsPage, "apply": ApplyPage, "steward": StewardPage,
             "steward/([a-z0-9-]+)/(approve|refuse)": DecisionPage, "register": RegisterPage,
             "images": ImagesPage}
    handlers: list[tuple] = [(prefix + path, page, {"site": site}) for path, page in pages.items()]
    handlers.append((prefix + "oauth_callback", HubOAuthCallbackHandler))
    return Application(
        handlers,
        default_handler_class=NotFound, default_handler_args={"site": site},
        # Signs the OAuth state and XSRF cookies; new at each start, which only means people are
        # signed in to these pages again (silently) after a restart.
        cookie_secret=cookie_secret or secrets.token_bytes(32),
        xsrf_cookies=True,
    )
