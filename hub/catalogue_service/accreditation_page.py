"""The data stewards' page of researcher accreditations (issue 19, item 5): who is accredited
until when, and a form per person to record a completed training (``datasets.accreditation``,
audited). Only data stewards and admins see it."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.web import HTTPError, authenticated

from datasets import workflow
from datasets.accreditation import record_accreditation
from datasets.models import Person
from hub.catalogue_service.app import StewardPage
from hub.webkit.forms import Problem


@dataclass(frozen=True)
class AccreditationRow:
    username: str
    display_name: str
    accredited_on: dt.date | None
    accredited_until: dt.date | None
    accredited_by: str | None
    state: str  # "valid", "expired" or "none"


def accreditations(session: Session, today: dt.date) -> list[AccreditationRow]:
    rows = []
    for person in session.scalars(select(Person).order_by(Person.username)):
        until = person.accredited_until
        state = "none" if until is None else ("valid" if until >= today else "expired")
        rows.append(AccreditationRow(person.username, person.display_name, person.accredited_on, until,
                                     person.accredited_by, state))
    return rows


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        return None


class AccreditationsPage(StewardPage):
    page_name = "accreditations"

    @authenticated
    async def get(self) -> None:
        if self.require_steward():
            recorded = self.get_query_argument("recorded", "")
            await self._page({}, notice=recorded if re.fullmatch(r"[a-z][a-z0-9._-]{0,63}", recorded) else "")

    async def _page(self, problems: dict[str, Problem], status: int = 200, notice: str = "") -> None:
        rows = await self.site.catalogue(accreditations, dt.date.today())
        self.show("accreditations.html", status, rows=rows, problems=problems, notice=notice)


class RecordAccreditation(AccreditationsPage):
    @authenticated
    async def post(self, username: str) -> None:
        if not self.require_steward():
            return
        trained_on = _day(self.get_body_argument("trained_on", ""))
        until = _day(self.get_body_argument("until", ""))
        if trained_on is None or until is None:
            problem = Problem("Give both dates, as on the form: the day of the training and the last day it counts.", {})
        else:
            try:
                await self.site.catalogue(record_accreditation, self.username, username, trained_on, until)
            except workflow.PermissionDenied as denied:
                raise HTTPError(403, "%s", str(denied)) from None
            except workflow.WorkflowError as refused:
                problem = Problem("The catalogue did not record the accreditation: {reason}", {"reason": str(refused)})
            else:
                self.see_other("steward/accreditations", recorded=username)
                return
        await self._page({username: problem}, status=400)
