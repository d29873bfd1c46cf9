"""The catalogue pages' forms: what a person typed, read into the workflow's typed values.

Every problem is attached to its field as an English message (the msgid) and its parameters, so
the page can show it next to the field in the reader's language, with everything typed kept. The
workflow checks again when it records the act; these checks exist so that a person sees every
problem at once, where it is, and in their language.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

from datasets.models import SLUG
from datasets.workflow import ApplicationForm
from hub.webkit.forms import Problem, Problems

# Column sizes of the projects table (datasets/models.py).
TITLE_MAX = 200
SLUG_MAX = 64




# --- applications ------------------------------------------------------------------------------


@dataclass
class ApplicationInput:
    """The application form as typed; a refused form is shown again from this, so nothing is lost."""

    slug: str = ""
    title: str = ""
    lay_summary: str = ""
    purpose: str = ""
    public_interest: str = ""
    datasets: list[str] = field(default_factory=list)
    members: str = ""
    starts_on: str = ""
    ends_on: str = ""


@dataclass(frozen=True)
class ApplicationContext:
    """What an application is checked against: the catalogue as it is now."""

    datasets: frozenset[str]
    people: frozenset[str]
    projects: frozenset[str]


def parse_members(text: str) -> list[str]:
    """``"erin, Bob ,,"`` -> ``["erin", "bob"]``: usernames as people sign in with them, once each."""
    members: list[str] = []
    for part in re.split(r"[,;\s]+", text):
        name = part.strip().lower()
        if name and name not in members:
            members.append(name)
    return members


def parse_date(text: str) -> dt.date:
    """A date as an HTML date field sends it (``YYYY-MM-DD``); ValueError otherwise."""
    text = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError(text)
    return dt.date.fromisoformat(text)


def _required(raw: Any, name: str, problems: Problems) -> str:
    value = getattr(raw, name).strip()
    if not value:
        problems[name] = Problem("This field is required.")
    return value


def _dates(raw: Any, problems: Problems) -> tuple[dt.date | None, dt.date | None]:
    dates: dict[str, dt.date | None] = {}
    for name in ("starts_on", "ends_on"):
        text = getattr(raw, name).strip()
        dates[name] = None
        if not text:
            problems[name] = Problem("This field is required.")
            continue
        try:
            dates[name] = parse_date(text)
        except ValueError:
            problems[name] = Problem("“{value}” is not a date; give it as YYYY-MM-DD, for example 2027-01-31.",
                                     {"value": text})
    starts_on, ends_on = dates["starts_on"], dates["ends_on"]
    if starts_on and ends_on and ends_on < starts_on:
        problems["ends_on"] = Problem("The end date ({ends_on}) is before the start date ({starts_on}).",
                                      {"ends_on": ends_on.isoformat(), "starts_on": starts_on.isoformat()})
    return starts_on, ends_on


def read_application(raw: ApplicationInput, context: ApplicationContext,
                     applicant: str) -> tuple[ApplicationForm | None, Problems]:
    """The workflow's ApplicationForm, or None and every problem by field."""
    problems: Problems = {}
    slug = raw.slug.strip().lower()
    if not slug:
        problems["slug"] = Problem("This field is required.")
    elif len(slug) > SLUG_MAX or not re.fullmatch(SLUG, slug):
        problems["slug"] = Problem(
            "Use 3 to 64 lower-case letters, digits and hyphens, starting with a letter, "
            "for example stroke-care.")
    elif slug in context.projects:
        problems["slug"] = Problem("A project called {slug} exists already; choose another short name.",
                                   {"slug": slug})
    title = _required(raw, "title", problems)
    if len(title) > TITLE_MAX:
        problems["title"] = Problem("Keep the title under {limit} characters.", {"limit": TITLE_MAX})
    lay_summary = _required(raw, "lay_summary", problems)
    purpose = _required(raw, "purpose", problems)
    public_interest = _required(raw, "public_interest", problems)
    datasets = sorted(set(raw.datasets))
    unknown = [d for d in datasets if d not in context.datasets]
    if not datasets:
        problems["datasets"] = Problem("Choose at least one dataset.")
    elif unknown:
        problems["datasets"] = Problem("There is no dataset called {names} in the catalogue.",
                                       {"names": ", ".join(unknown)})
    members = [m for m in parse_members(raw.members) if m != applicant]
    strangers = [m for m in members if m not in context.people]
    if strangers:
        problems["members"] = Problem(
            "{names}: nobody of that username in the catalogue. Give the usernames your colleagues "
            "sign in with, separated by commas.", {"names": ", ".join(strangers)})
    starts_on, ends_on = _dates(raw, problems)
    if problems:
        return None, problems
    return ApplicationForm(slug=slug, title=title, lay_summary=lay_summary, purpose=purpose,
                           public_interest=public_interest, datasets=datasets, members=members,
                           starts_on=starts_on, ends_on=ends_on), {}


# --- a steward's decisions ---------------------------------------------------------------------


@dataclass
class ApprovalInput:
    approval_reference: str = ""
    starts_on: str = ""
    ends_on: str = ""


@dataclass(frozen=True)
class Approval:
    approval_reference: str
    starts_on: dt.date
    ends_on: dt.date


def read_approval(raw: ApprovalInput) -> tuple[Approval | None, Problems]:
    """The keyword arguments of ``workflow.approve``, or None and every problem by field."""
    problems: Problems = {}
    reference = _required(raw, "approval_reference", problems)
    starts_on, ends_on = _dates(raw, problems)
    if problems:
        return None, problems
    return Approval(approval_reference=reference, starts_on=starts_on, ends_on=ends_on), {}


@dataclass
class RefusalInput:
    reason: str = ""


def read_refusal(raw: RefusalInput) -> tuple[str | None, Problems]:
    problems: Problems = {}
    reason = raw.reason.strip()
    if not reason:
        problems["reason"] = Problem("A refusal gives its reason, for the applicant.")
    return (None if problems else reason), problems
