"""The catalogue's Packages page (entry point ``tre.catalogue_pages``): researchers ask for a
package for one of their projects and read what became of their requests; admins see each request
with what it would bring (closure, sizes, licences, wheels for the images' platform), approve or
refuse it with a reason, and see what the index serves, also listed on the images page."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.web import HTTPError, authenticated

from tre_core.db import session_scope
from tre_core.i18n import translate
from datasets.models import Membership
from datasets.workflow import PermissionDenied, WorkflowError
from package_index import workflow
from package_index.fetch import PLATFORM_TEXT, FetchError
from package_index.models import RequestState
from package_index.policy import BadRequest
from package_index.settings import PackageIndexSettings
from package_index.store import IndexStore

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATE_TEXT = {RequestState.PENDING: "waiting for an admin", RequestState.REFUSED: "refused",
              RequestState.PUBLISHED: "installable", RequestState.FAILED: "approved, but not brought in",
              RequestState.REMOVED: "removed from the index"}


def _overview(session: Session, username: str, is_admin: bool) -> dict[str, Any]:
    projects = sorted(m.project_slug for m in session.scalars(select(Membership).where(Membership.username == username)))
    mine = [r for r in workflow.requests_of(session) if r.project in projects]
    for request in mine:
        session.expunge(request)
    overview = {"projects": [(p, workflow.policy_of(session, p).value) for p in projects], "mine": mine,
                "pending": [], "served": []}
    if is_admin:
        overview["pending"] = [r for r in workflow.requests_of(session)
                               if r.state in (RequestState.PENDING, RequestState.FAILED)]
        overview["served"] = workflow.served(session)
        for row in overview["pending"] + overview["served"]:
            session.expunge(row)
    return overview


def served_section(session: Session) -> tuple[str, dict[str, Any]]:
    """The images page's section: what the index serves."""
    rows = workflow.served(session)
    for row in rows:
        session.expunge(row)
    return "packages_served.html", {"served": rows}


def pages(site: Any, page: type) -> dict[str, type]:
    """The Packages pages, on the catalogue service's own ``page`` base class (its look, sign-in and
    language): handed over by the service (entry point ``tre.catalogue_pages``), so that this
    package imports nothing of the hub."""

    class PackagesPage(page):
        page_name = "packages"

        async def _show(self, status: int = 200, failure: str = "", typed: dict | None = None) -> None:
            admin = bool(self.viewer and self.viewer.is_admin)
            overview = await self.site.catalogue(_overview, self.username, admin)
            notice = self.get_query_argument("notice", "")
            notice = notice if re.fullmatch(r"(asked|approved|refused|reviewed)", notice) else ""
            self.show("packages.html", status, failure=failure, typed=typed or {}, STATE_TEXT=STATE_TEXT,
                      platform=PLATFORM_TEXT, notice=notice, **overview)

        @authenticated
        async def get(self) -> None:
            await self._show()

        @authenticated
        async def post(self) -> None:
            typed = {n: self.get_body_argument(n, "") for n in ("project", "name", "version", "reason")}

            def ask(session: Session) -> int:
                return workflow.ask(session, self.username, typed["project"], typed["name"], typed["version"],
                                    typed["reason"]).id
            try:
                await self.site.catalogue(ask)
            except BadRequest as refused:
                await self._show(400, translate(self.language, "The request was not recorded: {reason}",
                                                reason=str(refused)), typed)
                return
            self.see_other("packages", notice="asked")

    class PackageDecisionPage(PackagesPage):
        """An admin's review, approval or refusal of one request; approval fetches on the host."""

        @authenticated
        async def post(self, request_id: str, decision: str) -> None:
            if not (self.viewer and self.viewer.is_admin):
                raise HTTPError(403, "%s", translate(self.language, "Only admins decide on package requests."))
            settings = PackageIndexSettings()
            url = self.site.catalogue_url

            def sessions():
                return session_scope(url)
            try:
                if decision == "refuse":
                    reason = self.get_body_argument("reason", "")
                    await self.site.catalogue(lambda s: workflow.refuse(s, self.username, int(request_id), reason))
                elif decision == "review":
                    await asyncio.to_thread(workflow.review, sessions, self.username, int(request_id),
                                            settings.package_upstream_url, settings.ca_bundle)
                else:
                    await asyncio.to_thread(workflow.approve, sessions, IndexStore(settings.package_root), self.username,
                                            int(request_id), settings.package_upstream_url, settings.ca_bundle,
                                            self.get_body_argument("reason", ""))
            except PermissionDenied as denied:
                raise HTTPError(403, "%s", str(denied)) from None
            except (WorkflowError, FetchError) as refused:
                await self._show(400, translate(self.language, "The decision was not recorded: {reason}",
                                                reason=str(refused)))
                return
            self.see_other("packages", notice={"refuse": "refused", "review": "reviewed"}.get(decision, "approved"))

    site.add_templates(TEMPLATES)
    site.extra_nav.append(("packages", "packages", "Packages", False))
    site.extra_sections.setdefault("images", []).append(served_section)
    return {"packages": PackagesPage, r"packages/(\d+)/(review|approve|refuse)": PackageDecisionPage}
