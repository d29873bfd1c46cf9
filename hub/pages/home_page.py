"""What the hub's home page shows: the signed-in person's projects, in their language.

JupyterHub calls ``template_vars`` callables with the user only, synchronously, for every page it
renders; a catalogue read there would run on the hub's event loop, where a slow database freezes
every other request. So the callable returns at once a ``HomePageSource`` bound to the person,
without I/O, and the home template asks for the page with ``{% set home = tre.load() %}``: pages
are rendered with Jinja's async mode, which awaits that call, and the read itself runs in a small
thread pool. Results are cached briefly so that reloads do not reach the database each time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from datasets.access import ProjectSummary, projects_of
from datasets.catalogue import known_people
from datasets.quotas import ProjectStorage, Usage, human
from hub.pages.page_language import browser_language
from tre_core.db import session_scope
from tre_core.i18n import translate

TEMPLATES = str(Path(__file__).resolve().parent / "templates")


@dataclass
class HomePage:
    projects: list[ProjectSummary]
    is_steward: bool = False
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


class HomePageSource(_Texts):
    """The ``tre`` template variable: ``source(user)`` is cheap; ``await ….load()`` reads."""

    def __init__(self, catalogue_url: str, ttl_seconds: float = 5.0, threads: int = 4,
                 storage=None) -> None:
        self.catalogue_url = catalogue_url
        self.ttl_seconds = ttl_seconds
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tre-home")
        # storage(session, slugs, username) -> [ProjectStorage] (datasets.quotas.project_storage)
        self.storage = storage
        self._cache: dict[str, tuple[float, HomePage]] = {}

    def __deepcopy__(self, memo) -> HomePageSource:
        return self  # JupyterHub copies its settings: one source, one pool and one cache

    def __call__(self, user) -> HomePageFor:
        return HomePageFor(self, user.name if user is not None else None)

    def read(self, username: str | None) -> HomePage:
        """The page of ``username`` from the catalogue (blocking: runs in ``pool``)."""
        if username is None:
            return HomePage(projects=[])
        cached = self._cache.get(username)
        if cached and time.monotonic() - cached[0] < self.ttl_seconds:
            return cached[1]
        with session_scope(self.catalogue_url) as session:
            person = known_people(session).get(username)
            page = HomePage(projects=projects_of(session, username, dt.date.today()),
                            is_steward=bool(person and (person.is_data_steward or person.is_admin)))
            if self.storage is not None:
                page.storage = {s.slug: s for s in self.storage(session, [p.slug for p in page.projects], username)}
        self._cache[username] = (time.monotonic(), page)
        return page


@dataclass
class HomePageFor(_Texts):
    source: HomePageSource
    username: str | None

    async def load(self) -> HomePage:
        return await asyncio.get_running_loop().run_in_executor(self.source.pool, self.source.read, self.username)
