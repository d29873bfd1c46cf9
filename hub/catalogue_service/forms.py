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

from datasets.grant_spec import GrantSpec, SpecError
from datasets.models import SLUG
from datasets.requested_data import DatasetSchema, check
from datasets.workflow import ApplicationForm
from hub.webkit.forms import Problem, Problems

# Column sizes of the projects table (datasets/models.py).
TITLE_MAX = 200
SLUG_MAX = 64


# --- what is asked of each dataset: variables and period ---------------------------------------
# One form for the applicant and for the steward who amends it. A variable is a checkbox named
# ``variables`` whose value is ``dataset:table:column``; the period and the justification are
# fields named ``period_from:dataset``, ``period_until:dataset`` and ``justification:dataset``.
# Problems are attached to ``variables:dataset``, ``period:dataset``, ``justification:dataset``
# or ``request:dataset``.


@dataclass
class RequestInput:
    """The variables, periods and justifications as typed, kept whole when the form is refused."""

    variables: list[str] = field(default_factory=list)
    period_from: dict[str, str] = field(default_factory=dict)
    period_until: dict[str, str] = field(default_factory=dict)
    justification: dict[str, str] = field(default_factory=dict)
    criteria: dict[str, str] = field(default_factory=dict)  # one criterion a line (``CRITERION``)

    @classmethod
    def from_arguments(cls, arguments: dict[str, list[str]]) -> RequestInput:
        """From a posted form's arguments ({name: [values]}, decoded)."""
        typed = cls(variables=list(arguments.get("variables", [])))
        for name, values in arguments.items():
            kind, _, slug = name.partition(":")
            if slug and kind in ("period_from", "period_until", "justification", "criteria") and values:
                getattr(typed, kind)[slug] = values[-1]
        return typed

    @classmethod
    def of_specs(cls, specs: dict[str, dict] | None) -> RequestInput:
        """The form filled with a recorded request (GrantSpec JSON by dataset), for amending it."""
        typed = cls()
        for slug, stored in sorted((specs or {}).items()):
            spec = GrantSpec.from_json(stored)
            typed.variables += [f"{slug}:{table}:{column}" for table, columns in spec.tables.items()
                                for column in columns]
            if spec.period:
                typed.period_from[slug], typed.period_until[slug] = (d.isoformat() for d in spec.period)
            typed.justification[slug] = spec.justification or ""
            typed.criteria[slug] = "\n".join(criterion_line(c) for c in spec.criteria)
        return typed

    def datasets(self) -> list[str]:
        """The datasets some variable is ticked of."""
        return sorted({v.split(":", 1)[0] for v in self.variables if ":" in v})


# Which field of the form a refusal of ``parse_spec`` belongs to.
SPEC_FIELDS = {"tables": "variables", "period": "period", "justification": "justification", "criteria": "criteria"}
# A cohort criterion as a steward writes it, one a line: ``table.column operator value[, value...]``
# (``column operator ...`` for a one-table dataset), e.g. ``stays.main_diagnosis prefix I21, I22``.
CRITERION = re.compile(r"^\s*(?:(?P<table>[^\s.]+)\.)?(?P<column>\w+)\s+(?P<op>not_in|in|prefix|between|!=|<=|>=|=|<|>)"
                       r"\s+(?P<values>\S.*?)\s*$")


def criterion_line(criterion: dict) -> str:
    value = criterion["value"]
    values = value if isinstance(value, (list, tuple)) else [value]
    shown = ", ".join(v.isoformat() if isinstance(v, dt.date) else str(v) for v in values)
    column = criterion["column"] if criterion["table"] == "." else f"{criterion['table']}.{criterion['column']}"
    return f"{column} {criterion['op']} {shown}"


def read_criteria(text: str, schema: DatasetSchema) -> list[dict] | Problem:
    """The criteria of the form's lines, each value typed as its column holds it (numbers as
    numbers), for ``parse_spec`` to check; or the first line that cannot be read."""
    from datasets.grant_spec import LIST_OPERATORS, kind_of

    criteria = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        found = CRITERION.match(line)
        if found is None:
            return Problem("Line {n} is not a criterion; write table.column operator value, for example "
                           "hospital_stays.main_diagnosis prefix I21, I22.", {"n": number})
        table, column, op = found["table"] or ".", found["column"], found["op"]
        kind = next((kind_of(t) for name, t in schema.tables.get(table, {}).get("schema", []) if name == column), "")
        values = [_typed(v.strip(), kind) for v in found["values"].split(",") if v.strip()]
        criteria.append({"table": table, "column": column, "op": op,
                         "value": values if op in LIST_OPERATORS else (values[0] if len(values) == 1 else values)})
    return criteria


def _typed(value: str, kind: str) -> object:
    if kind == "number":
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _period(raw: RequestInput, slug: str, problems: Problems) -> dict[str, dt.date] | None:
    start, end = raw.period_from.get(slug, "").strip(), raw.period_until.get(slug, "").strip()
    if not start and not end:
        return None
    if not (start and end):
        problems[f"period:{slug}"] = Problem("Give both ends of the period, or neither for every year the "
                                             "dataset holds.")
        return None
    try:
        return {"from": parse_date(start), "until": parse_date(end)}
    except ValueError:
        problems[f"period:{slug}"] = Problem("“{value}” is not a date; give it as YYYY-MM-DD, for example "
                                             "2027-01-31.", {"value": end if re.fullmatch(
                                                 r"\d{4}-\d{2}-\d{2}", start) else start})
        return None


def read_request(datasets: list[str], raw: RequestInput,
                 schemas: dict[str, DatasetSchema]) -> tuple[dict[str, dict], Problems]:
    """What is asked of each of ``datasets`` as ``parse_spec`` reads it ({dataset: data}), checked
    against the newest version's schema; problems by field, every dataset's at once."""
    problems: Problems = {}
    chosen: dict[str, dict[str, list[str]]] = {slug: {} for slug in datasets}
    for value in raw.variables:
        slug, _, rest = value.partition(":")
        table, _, column = rest.rpartition(":")
        if slug in chosen and table and column:
            chosen[slug].setdefault(table, []).append(column)
    specs: dict[str, dict] = {}
    for slug in datasets:
        schema = schemas.get(slug)
        if schema is None:
            problems[f"variables:{slug}"] = Problem("Dataset {dataset} has no registered version to ask "
                                                    "variables of.", {"dataset": slug})
            continue
        if not chosen[slug]:
            problems[f"variables:{slug}"] = Problem("Tick the variables of {dataset} that your purpose needs.",
                                                    {"dataset": slug})
            continue
        data: dict = {"tables": chosen[slug], "period": _period(raw, slug, problems),
                      "justification": raw.justification.get(slug, "").strip() or None}
        if f"period:{slug}" in problems:
            continue
        criteria = read_criteria(raw.criteria.get(slug, ""), schema)
        if isinstance(criteria, Problem):
            problems[f"criteria:{slug}"] = criteria
            continue
        if criteria:
            data["criteria"] = criteria
        linkage = schema.linkage
        if linkage and any(_links(schema, linkage, table) for table in chosen[slug]):
            data["linkage"] = linkage  # the cohort reaches the person through its producer's table
        try:
            check(data, schema)
        except SpecError as refused:
            problems[f"{SPEC_FIELDS.get(refused.field, 'request')}:{slug}"] = Problem(
                refused.message.msgid, dict(refused.message.params))
            continue
        specs[slug] = data
    return specs, problems


def _links(schema: DatasetSchema, linkage: str, table: str) -> bool:
    from datasets.grant_spec import linkage_key

    key = linkage_key(schema.tables, linkage)
    return table in schema.tables and any(name == key for name, _ in schema.tables[table]["schema"])


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
    request: RequestInput = field(default_factory=RequestInput)


@dataclass(frozen=True)
class ApplicationContext:
    """What an application is checked against: the catalogue as it is now."""

    datasets: frozenset[str]
    people: frozenset[str]
    projects: frozenset[str]
    schemas: dict[str, DatasetSchema] = field(default_factory=dict)  # newest version of each dataset


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
    datasets = sorted(set(raw.datasets) | set(raw.request.datasets()))
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
    specs, asked = read_request([d for d in datasets if d not in unknown], raw.request, context.schemas)
    problems.update(asked)
    if problems:
        return None, problems
    return ApplicationForm(slug=slug, title=title, lay_summary=lay_summary, purpose=purpose,
                           public_interest=public_interest, datasets=datasets, members=members,
                           starts_on=starts_on, ends_on=ends_on, specs=specs), {}


# --- a steward's decisions ---------------------------------------------------------------------


@dataclass
class AmendInput:
    """A steward's amendment of what an application asks, as typed."""

    datasets: list[str] = field(default_factory=list)
    request: RequestInput = field(default_factory=RequestInput)


def read_amendment(raw: AmendInput, schemas: dict[str, DatasetSchema]) -> tuple[dict[str, dict], Problems]:
    """{dataset: data for parse_spec}, or every problem by field. A dataset unticked, with none of
    its variables ticked, is no longer asked for; one at least stays."""
    datasets = sorted({d for d in [*raw.datasets, *raw.request.datasets()] if d in schemas})
    if not datasets:
        return {}, {"amend": Problem("Tick the variables of at least one dataset; to grant nothing, refuse the "
                                     "application instead.")}
    return read_request(datasets, raw.request, schemas)


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
