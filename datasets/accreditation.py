"""Researcher accreditation: the safe-researcher training a person completed, and until when it
counts (SATRE 1.5.01, 1.6.04).

Data stewards record it (``tre people accredit`` or the steward's page), each record an audit row.
An expired or missing accreditation refuses workspace starts (the spawner's access check) and
export submissions (the egress review calls ``require_accredited`` at its submit site), with a
message naming the data stewards to ask. Output checkers' accreditation is another thing
(``Person.checker_accredited_until``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.access import AccessRefused
from datasets.access import Refusal
from datasets.models import Person
from datasets.workflow import WorkflowError, require_steward

# The longest an accreditation may be recorded for: training is renewed at least this often.
LONGEST = dt.timedelta(days=5 * 366)


def stewards(session: Session) -> str:
    """Whom to ask: the data stewards' names and addresses, for the refusal message."""
    people = session.scalars(select(Person).where(Person.is_data_steward).order_by(Person.username))
    named = [f"{p.display_name} <{p.email}>" if p.email else p.display_name for p in people]
    return ", ".join(named) or "a data steward of the TRE"


def require_accredited(session: Session, username: str, today: dt.date | None = None) -> Person:
    """The person, if their accreditation is in force today; otherwise ``AccessRefused`` saying
    since when it lapsed (or that there is none) and whom to ask."""
    today = today or dt.date.today()
    person = session.get(Person, username)
    until = person.accredited_until if person else None
    if until is None:
        raise AccessRefused(Refusal.NOT_ACCREDITED, username=username, stewards=stewards(session))
    if until < today:
        raise AccessRefused(Refusal.ACCREDITATION_EXPIRED, username=username, date=until.isoformat(),
                            stewards=stewards(session))
    return person


class Explained(NamedTuple):
    """A refusal as English msgid and parameters, for callers with their own message type."""

    template: str
    params: dict[str, Any]


def refusal(session: Session, username: str, today: dt.date | None = None) -> Explained | None:
    """For callers outside the catalogue (the egress review's submit): None when accredited."""
    from datasets.messages import REFUSALS

    try:
        require_accredited(session, username, today)
    except AccessRefused as refused:
        return Explained(REFUSALS[refused.reason], refused.params)
    return None


def record_accreditation(session: Session, actor: str, username: str, trained_on: dt.date,
                         until: dt.date) -> Person:
    """A steward records that ``username`` completed the training on ``trained_on``, valid until
    ``until`` (inclusive). Audited; the steward cannot accredit themself."""
    require_steward(session, actor)
    person = session.get(Person, username)
    if person is None:
        raise WorkflowError(f"{username} is not in the catalogue; an admin adds people first.")
    if actor == username:
        raise WorkflowError("Nobody records their own accreditation; ask another data steward.")
    if until < trained_on:
        raise WorkflowError(f"The accreditation ends ({until}) before the training ({trained_on}); check the dates.")
    if trained_on > dt.date.today():
        raise WorkflowError(f"The training date {trained_on} is in the future; record it once it is done.")
    if until - trained_on > LONGEST:
        raise WorkflowError(f"An accreditation lasts at most five years from the training; {until} is later.")
    person.accredited_on, person.accredited_until, person.accredited_by = trained_on, until, actor
    audit.record(session, actor, AuditAction.ACCREDITATION_RECORDED,
                 details={"username": username, "trained_on": trained_on, "until": until})
    return person
