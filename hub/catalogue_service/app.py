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
import contextlib
import datetime as dt
import re
import secrets
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from babel.numbers import format_decimal
from jinja2 import ChoiceLoader, FileSystemLoader
from jupyterhub.services.auth import HubOAuthCallbackHandler
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tornado.web import Application, HTTPError, authenticated

from datasets import workflow
from datasets.access import Refusal
from datasets.messages import REFUSALS
from datasets.models import SLUG
from datasets.quotas import ProjectStorage, human
from hub.catalogue_service import forms, queries
from hub.catalogue_service.checkpoints import PublishedCheckpoints, newest
from hub.webkit.forms import Problem, Problems
from hub.webkit.pages import KitPage, KitSite
from tre_core.db import session_scope
from tre_core.i18n import translate

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
VERSION_STATUS_TEXT = {"active": "In use", "suspended": "Suspended: failed a check", "retired": "Retired"}
SENSITIVITY_TEXT = {"pseudonymised": "pseudonymised", "anonymised": "anonymised", "open": "open"}
VOCABULARY = (*STATUS_TEXT.values(), *IMAGE_STATUS_TEXT.values(), *ROLE_TEXT.values(), *IDENTIFIER_TEXT.values(), *SENSITIVITY_TEXT.values(),
              *VERSION_STATUS_TEXT.values())

class Site(KitSite):
    """What every page shares: the catalogue database, the URLs, the templates and the clock."""

    def __init__(self, catalogue_url: str, *, prefix: str, hub_prefix: str,
                 today: Callable[[], dt.date] = dt.date.today,
                 storage: Callable[..., list[ProjectStorage]] | None = None) -> None:
        super().__init__(TEMPLATES, prefix=prefix, hub_prefix=hub_prefix)
        self.catalogue_url = catalogue_url
        # storage(session, slugs, username) -> usage and quotas (datasets.quotas.project_storage)
        self.storage = storage
        self.today = today
        # What other packages add (entry points tre.catalogue_pages, see ``plugin_pages``): links in
        # the navigation bar, (page name, path, English label, admins only), and sections of pages.
        self.extra_nav: list[tuple[str, str, str, bool]] = []
        self.extra_sections: dict[str, list[Callable[[Session], tuple[str, dict[str, Any]]]]] = {}

    def add_templates(self, folder: Path) -> None:
        """Templates of a package that adds pages; they extend this package's base.html."""
        self.templates.loader = ChoiceLoader([FileSystemLoader(folder), self.templates.loader])

    async def catalogue(self, act: Callable[..., T], *args: Any) -> T:
        """Run ``act(session, *args)`` in one transaction, in a worker thread."""
        return await asyncio.to_thread(self._in_transaction, act, *args)

    def _in_transaction(self, act: Callable[..., T], *args: Any) -> T:
        with session_scope(self.catalogue_url) as session:
            return act(session, *args)

    async def storage_of(self, slugs: list[str] | None, username: str | None = None) -> dict[str, ProjectStorage]:
        if self.storage is None:
            return {}
        found = await self.catalogue(self.storage, slugs, username)
        return {s.slug: s for s in found}

    def page_values(self, language: str) -> dict[str, Any]:
        def refusal(found: tuple[Refusal, dict[str, Any]]) -> str:
            reason, params = found
            return translate(language, REFUSALS[reason], **params)

        def size(value: int) -> str:
            unit = next((u for u in ("TB", "GB", "MB", "kB") if value >= {"TB": 1e12, "GB": 1e9, "MB": 1e6, "kB": 1e3}[u]), "B")
            scale = {"TB": 1e12, "GB": 1e9, "MB": 1e6, "kB": 1e3, "B": 1}[unit]
            return f"{format_decimal(round(value / scale, 1), locale=language)} {unit}"

        def percent(rate: float) -> str:
            return format_decimal(round(rate * 100, 1), locale=language)

        return dict(refusal=refusal, percent=percent, STATUS_TEXT=STATUS_TEXT, ROLE_TEXT=ROLE_TEXT, IDENTIFIER_TEXT=IDENTIFIER_TEXT,
                    SENSITIVITY_TEXT=SENSITIVITY_TEXT, human=human, IMAGE_STATUS_TEXT=IMAGE_STATUS_TEXT,
                    VERSION_STATUS_TEXT=VERSION_STATUS_TEXT, size=size, extra_nav=self.extra_nav)


class Page(KitPage):
    """A catalogue page: who is reading (from the hub, and as the catalogue knows them)."""

    viewer: queries.Viewer | None = None

    async def prepare(self) -> None:
        # Ask the hub who this is without blocking the event loop; HubAuthenticated's
        # get_current_user then reads the answer that get_user caches on the handler.
        await self.hub_auth.get_user(self, sync=False)
        if self.current_user:
            self.viewer = await self.site.catalogue(queries.viewer, self.current_user["name"])

    @property
    def username(self) -> str:
        return self.current_user["name"]

    def body_fields(self) -> dict[str, list[str]]:
        """Every field of the posted form, decoded: {name: [values]}."""
        return {name: self.get_body_arguments(name) for name in self.request.body_arguments}

    def page_values(self) -> dict[str, Any]:
        return {"user": self.current_user, "viewer": self.viewer}

    def error_page_values(self) -> dict[str, Any]:
        return {**super().error_page_values(), "viewer": self.viewer}


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
        storage = await self.site.storage_of([p.slug for p in projects], self.username)
        self.show("projects.html", projects=projects, applied=self.get_query_argument("applied", None), storage=storage,
                  spawn_prefix=f"{self.site.hub_prefix}spawn/{quote(self.username, safe='')}/")


def submit_application(session: Session, applicant: str, typed: forms.ApplicationInput) -> Problems:
    """Record the application, or say what is wrong with it (and record nothing)."""
    application, problems = forms.read_application(typed, queries.application_context(session), applicant)
    if application is None:
        return problems
    workflow.apply_for_project(session, applicant, application)
    return {}


def amend_request(session: Session, steward: str, slug: str, typed: forms.AmendInput) -> Problems:
    """Record the steward's amendment of an application, or say what is wrong (and change nothing)."""
    specs, problems = forms.read_amendment(typed, queries.dataset_schemas(session))
    if problems:
        return problems
    workflow.amend_request(session, steward, slug, specs)
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
            request=forms.RequestInput.from_arguments(self.body_fields()),
        )
        try:
            problems = await self.site.catalogue(submit_application, self.username, typed)
        except workflow.WorkflowError as refused:  # the catalogue changed since it was read
            problems = {"form": Problem("The catalogue did not record the application: {reason}",
                                        {"reason": refused.said_in(self.language)})}
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
            notice = {k: v for k, v in notice.items() if re.fullmatch(SLUG, v)}
            # approved for a period that starts later: its members can start on that day, not now
            with contextlib.suppress(ValueError):
                starts = dt.date.fromisoformat(self.get_query_argument("starts", ""))
                if starts > dt.date.today():
                    notice["starts"] = starts.isoformat()
            await self._queue({}, {}, notice=notice)

    async def _queue(self, typed: dict[str, Any], problems: dict[str, Problems], status: int = 200,
                     notice: dict[str, str] | None = None) -> None:
        queue = await self.site.catalogue(queries.steward_queue)
        approvals = {a.slug: forms.ApprovalInput(
            starts_on=a.starts_on.isoformat() if a.starts_on else "",
            ends_on=a.ends_on.isoformat() if a.ends_on else "") for a in queue}
        refusals = {a.slug: forms.RefusalInput() for a in queue}
        amendments = {a.slug: forms.AmendInput(datasets=list(a.requested_datasets),
                                               request=forms.RequestInput.of_specs(a.requested_specs)) for a in queue}
        for slug, value in typed.items():
            kind = {forms.ApprovalInput: approvals, forms.AmendInput: amendments}.get(type(value), refusals)
            kind[slug] = value
        choices = await self.site.catalogue(queries.dataset_choices) if queue else []
        amending = {slug for slug, value in typed.items() if isinstance(value, forms.AmendInput)}
        amended = self.get_query_argument("amended", "") if self.request.method == "GET" else ""
        if re.fullmatch(SLUG, amended):  # back from recording an amendment
            notice = {**(notice or {}), "amended": amended}
        self.show("steward.html", status, queue=queue, approvals=approvals, refusals=refusals, amendments=amendments,
                  amending=amending, choices=choices, problems=problems, notice=notice or {}, storage=await self.site.storage_of(None),
                  overview=await self.site.catalogue(queries.extracts_overview))


class DecisionPage(StewardPage):
    @authenticated
    async def post(self, slug: str, decision: str) -> None:
        if not self.require_steward():
            return
        if decision == "amend":
            amended = forms.AmendInput(datasets=self.get_body_arguments("datasets"),
                                       request=forms.RequestInput.from_arguments(self.body_fields()))
            try:
                problems = await self.site.catalogue(amend_request, self.username, slug, amended)
            except workflow.PermissionDenied as denied:
                raise HTTPError(403, "%s", denied.said_in(self.language)) from None
            except workflow.WorkflowError as refused:
                problems = {"amend": Problem("The catalogue did not record the amendment: {reason}",
                                             {"reason": refused.said_in(self.language)})}
            if not problems:
                self.see_other("steward", amended=slug)
                return
            await self._queue({slug: amended}, {slug: problems}, status=400)
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
                raise HTTPError(403, "%s", denied.said_in(self.language)) from None
            except workflow.WorkflowError as refused:
                problems = {"form": Problem("The catalogue did not record the decision: {reason}",
                                            {"reason": refused.said_in(self.language)})}
            else:
                if decision == "approve":
                    self.see_other("steward", approved=slug, starts=approval.starts_on.isoformat())
                else:
                    self.see_other("steward", refused=slug)
                return
        await self._queue({slug: typed}, {slug: problems}, status=400)


class RegisterPage(Page):
    """The public register of approved projects: what the law asks to publish, without login."""

    page_name = "register"

    async def get(self) -> None:
        self.show("register.html", entries=await self.site.catalogue(queries.public_register), checkpoint=newest())


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
        sections = [await self.site.catalogue(section) for section in self.site.extra_sections.get("images", [])]
        self.show("images.html", registry=await self.site.catalogue(queries.image_registry), sections=sections)


class NotFound(Page):
    async def get(self, *args: Any) -> None:
        raise HTTPError(404)

    post = get


def accreditation_pages() -> dict[str, type]:
    from hub.catalogue_service.accreditation_page import AccreditationsPage, RecordAccreditation

    return {"steward/accreditations": AccreditationsPage,
            r"steward/accreditations/([a-z][a-z0-9._-]{0,63})": RecordAccreditation}


def plugin_pages(site: Site) -> dict[str, type]:
    """Pages other packages add, through the ``tre.catalogue_pages`` entry-point group: each names a
    function ``(site, page base class) -> {path: handler}`` (``package_index``'s Packages page), so
    neither imports the other."""
    from importlib.metadata import entry_points

    pages: dict[str, type] = {}
    for entry in entry_points(group="tre.catalogue_pages"):
        pages.update(entry.load()(site, Page))
    return pages


def make_app(site: Site, *, cookie_secret: bytes | None = None) -> Application:
    prefix = site.prefix
    pages = {"": CataloguePage, "projects": ProjectsPage, "apply": ApplyPage, "steward": StewardPage,
             "steward/([a-z0-9-]+)/(approve|refuse|amend)": DecisionPage, "register": RegisterPage,
             "images": ImagesPage, **plugin_pages(site)}
    pages.update(accreditation_pages())  # issue 19, item 5
    handlers: list[tuple] = [(prefix + path, page, {"site": site}) for path, page in pages.items()]
    handlers.append((prefix + "oauth_callback", HubOAuthCallbackHandler))
    handlers.append((prefix + r"register/(audit-checkpoints\.jsonl|audit-key\.pub)", PublishedCheckpoints))
    return Application(
        handlers,
        default_handler_class=NotFound, default_handler_args={"site": site},
        # Signs the OAuth state and XSRF cookies; new at each start, which only means people are
        # signed in to these pages again (silently) after a restart.
        cookie_secret=cookie_secret or secrets.token_bytes(32),
        xsrf_cookies=True,
    )
