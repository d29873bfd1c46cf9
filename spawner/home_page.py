"""What the hub's home page shows: the signed-in person's projects, in their language.

JupyterHub calls ``template_vars`` callables with the user only and has no async form, so this
reads the catalogue synchronously; the query is one indexed lookup, and results are cached briefly
so that page reloads do not reach the database each time.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

from datasets.catalogue import ProjectSummary, known_people, projects_of
from datasets.db import session_scope
from datasets.i18n import translate
from spawner.page_language import browser_language

TEMPLATES = str(Path(__file__).resolve().parent / "templates")


@dataclass
class HomePage:
    projects: list[ProjectSummary]
    is_steward: bool = False

    def language(self, static_url) -> str:
        """The browser's language (see ``browser_language``)."""
        return browser_language(static_url)

    @staticmethod
    def text(language: str, message: str, **params: object) -> str:
        return translate(language, message, **params)


class HomePageSource:
    def __init__(self, catalogue_url: str, ttl_seconds: float = 5.0) -> None:
        self.catalogue_url = catalogue_url
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, tuple[float, HomePage]] = {}

    def __call__(self, user) -> HomePage:
        if user is None:
            return HomePage(projects=[])
        cached = self._cache.get(user.name)
        if cached and time.monotonic() - cached[0] < self.ttl_seconds:
            return cached[1]
        with session_scope(self.catalogue_url) as session:
            person = known_people(session).get(user.name)
            page = HomePage(projects=projects_of(session, user.name, dt.date.today()),
                            is_steward=bool(person and (person.is_data_steward or person.is_admin)))
        self._cache[user.name] = (time.monotonic(), page)
        return page
