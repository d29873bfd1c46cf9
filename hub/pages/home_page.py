"""What the hub's home page shows: the signed-in person's projects, in their language.

JupyterHub calls ``template_vars`` callables with the user only, synchronously, for every page it
renders; a catalogue read there would run on the hub's event loop, where a slow database freezes
every other request. So the callable returns at once a ``HomePageSource`` bound to the person,
without I/O, and the home template asks for the page with ``{% set home = tre.load() %}``: pages
are rendered with Jinja's async mode, which awaits that call, and the read itself runs in a small
thread pool. Results are cached briefly so that reloads do not reach the database each time.

The page is also where each person lands (``LandingHandler``, the hub's ``default_url``): what
waits for them on the other pages comes first, with counts (``Errand``), and someone with no
project of their own lands on the page of their role: a checker on the review queue, a steward on
the applications, an admin on the images.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jupyterhub.handlers.base import BaseHandler
from sqlalchemy import func, select
from tornado import web

from datasets.access import AccessRefused, ProjectSummary, is_accredited_checker, projects_of
from datasets.messages import explain
from datasets.models import AnalysisImage, AuditHead, ImageStatus, Person
from datasets.quotas import ProjectStorage, Usage, human
from hub.pages.page_language import browser_language
from tre_core.db import session_scope
from tre_core.i18n import translate

TEMPLATES = str(Path(__file__).resolve().parent / "templates")
log = logging.getLogger("tre.home")

# What waits, by kind: its page (under the hub's prefix) and its line on the home page. Counts are
# written "waiting: 3", never "3 requests wait", so that one is no exception in either language.
ERRANDS = {
    "review": ("services/egress/queue", "Export requests to review – waiting: {count}"),
    "returned": ("services/egress/", "Your export requests returned to you – waiting: {count}"),
    "requests": ("services/egress/", "Your export requests under way: {count}"),
    "applications": ("services/catalogue/steward", "Applications to decide – waiting: {count}"),
    "images": ("services/catalogue/images", "Analysis images in use: {count}"),
}
# Where someone with no project lands, by the first of their roles' errands they have.
LANDING_ORDER = ("review", "applications", "images")
OPEN_REQUEST_STATES = frozenset({"draft", "submitted", "partially_reviewed", "reviewed", "approved"})


@dataclass(frozen=True)
class Errand:
    """Something waiting for this person on another page, with how many."""

    kind: str
    count: int

    @property
    def path(self) -> str:
        return ERRANDS[self.kind][0]


@dataclass
class HomePage:
    projects: list[ProjectSummary]
    is_steward: bool = False
    errands: list[Errand] = field(default_factory=list)
    is_checker: bool = False
    is_admin: bool = False
    # slug -> usage and quotas of the project's /project and of this person's home there
    storage: dict[str, ProjectStorage] = field(default_factory=dict)


class _Texts:
    def language(self, static_url) -> str:
        """The browser's language (see ``browser_language``)."""
        return browser_language(static_url)

    @staticmethod
    def text(language: str, message: str, **params: object) -> str:
        return translate(language, message, **params)

    @staticmethod
    def used(language: str, usage: Usage | None, quota: int) -> str:
        if usage is None:
            return translate(language, "not used yet (quota {quota})", quota=human(quota))
        return f"{human(usage.used)} / {human(quota)}"

    @staticmethod
    def label(language: str, message: str) -> str:
        """A text from elsewhere (a reason of the hub's): translated if known, never formatted,
        since it may hold braces of its own."""
        try:
            return translate(language, message)
        except (KeyError, IndexError, ValueError):
            return message

    @staticmethod
    def refusal(language: str, refusal: AccessRefused) -> str:
        return explain(refusal, language)

    @staticmethod
    def errand(language: str, errand: Errand) -> str:
        return translate(language, ERRANDS[errand.kind][1], count=errand.count)


class HomePageSource(_Texts):
    """The ``tre`` template variable: ``source(user)`` is cheap; ``await ….load()`` reads."""

    def __init__(self, catalogue_url: str, ttl_seconds: float = 5.0, threads: int = 4,
                 storage=None, review_queue: Callable[[str], list] | None = None,
                 requests_of: Callable[[str], list] | None = None) -> None:
        self.catalogue_url = catalogue_url
        self.ttl_seconds = ttl_seconds
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tre-home")
        # storage(session, slugs, username) -> [ProjectStorage] (datasets.quotas.project_storage)
        self.storage = storage
        # the egress review's answers (egress_review.reading.AirlockReader.queue / .list_requests),
        # handed in by jupyterhub_config.py: the hub does not import the egress review
        self.review_queue = review_queue
        self.requests_of = requests_of
        self._cache: dict[str, tuple[float, int | None, HomePage]] = {}

    def __deepcopy__(self, memo) -> HomePageSource:
        return self  # JupyterHub copies its settings: one source, one pool and one cache

    def __call__(self, user) -> HomePageFor:
        return HomePageFor(self, user.name if user is not None else None)

    def read(self, username: str | None) -> HomePage:
        """The page of ``username`` from the catalogue (blocking: runs in ``pool``)."""
        if username is None:
            return HomePage(projects=[])
        today = dt.date.today()
        with session_scope(self.catalogue_url) as session:
            # every act on the catalogue (an approval, a grant, a membership) is an audit row: a page
            # read before the newest row is stale at once, not only after the TTL
            mark = session.scalar(select(AuditHead.seq).where(AuditHead.id == 1))  # the log's one head row
            cached = self._cache.get(username)
            if cached and cached[1] == mark and time.monotonic() - cached[0] < self.ttl_seconds:
                return cached[2]
            person = session.get(Person, username)  # one row, not every person of the catalogue
            page = HomePage(projects=projects_of(session, username, today),
                            is_steward=bool(person and (person.is_data_steward or person.is_admin)),
                            is_checker=is_accredited_checker(session, username, today),
                            is_admin=bool(person and person.is_admin))
            if self.storage is not None:
                page.storage = {s.slug: s for s in self.storage(session, [p.slug for p in page.projects], username)}
            if person and person.is_data_steward:
                from hub.catalogue_service.queries import steward_queue
                page.errands.append(Errand("applications", len(steward_queue(session))))
            if page.is_admin:
                page.errands.append(Errand("images", session.scalar(
                    select(func.count()).select_from(AnalysisImage).where(AnalysisImage.status == ImageStatus.ACTIVE))))
        page.errands[:0] = self._egress_errands(username, page)
        self._cache[username] = (time.monotonic(), mark, page)
        return page

    def _egress_errands(self, username: str, page: HomePage) -> list[Errand]:
        """The review queue's length for a checker; a researcher's returned and open requests. The
        home page still shows when the egress review cannot answer (its errands are left out)."""
        errands = []
        try:
            if page.is_checker and self.review_queue is not None:
                errands.append(Errand("review", len(self.review_queue(username))))
            if page.projects and self.requests_of is not None:
                mine = [r for r in self.requests_of(username) if r.author == username]
                errands.append(Errand("returned", sum(r.state == "returned" for r in mine)))
                errands.append(Errand("requests", sum(r.state in OPEN_REQUEST_STATES for r in mine)))
        except Exception:
            log.exception("The egress review did not say what waits for %s", username)
        return errands

    def landing(self, page: HomePage) -> str | None:
        """Where someone lands after signing in, under the hub's prefix: the home page (None) for
        whoever has a project; else the page of their first role with something to do there."""
        if page.projects:
            return None
        kinds = {e.kind: e for e in page.errands}
        return next((ERRANDS[k][0] for k in LANDING_ORDER if k in kinds), None)


@dataclass
class HomePageFor(_Texts):
    source: HomePageSource
    username: str | None

    async def load(self) -> HomePage:
        return await asyncio.get_running_loop().run_in_executor(self.source.pool, self.source.read, self.username)


class LandingHandler(BaseHandler):
    """``/hub/tre/landing``, the hub's ``default_url``: the home page, or the page of the
    person's role when they have no project (``HomePageSource.landing``)."""

    def initialize(self, source: HomePageSource) -> None:
        self.source = source

    @web.authenticated
    async def get(self) -> None:
        page = await asyncio.get_running_loop().run_in_executor(self.source.pool, self.source.read,
                                                                self.current_user.name)
        where = self.source.landing(page)
        self.redirect(f"{self.base_url}{where}" if where else f"{self.hub.base_url}home")


def landing_handlers(source: HomePageSource) -> list[tuple]:
    """For ``c.JupyterHub.extra_handlers`` (JupyterHub puts them under ``/hub``)."""
    return [(r"/tre/landing", LandingHandler, {"source": source})]
