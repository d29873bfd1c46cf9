"""What a project asks of each dataset and what its grants give (variables and period), and how its
extracts are coming along: plain frozen values for the catalogue pages, read in an open session.

Counts only: the people in an extract, the cohort people the linkage found, the objections on the
register; never a person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datasets.grant_spec import GrantSpec, whole_dataset
from datasets.models import DatasetVersion, Extract, Grant, OptOut, Project, version_key
from extracts import jobs


@dataclass(frozen=True)
class Asked:
    """The variables and period asked for (or granted) of one dataset, as the pages show them."""

    dataset: str
    variables: tuple[str, ...]  # "table.column" ("column" for a one-table dataset)
    period: str | None  # "YYYY-MM-DD – YYYY-MM-DD"; None: every year the dataset holds
    criteria: int = 0
    justification: str | None = None
    whole: bool = False  # asked or granted before variables were: every table and column
    title: str = ""
    version: str = ""


def asked_of(dataset: str, spec: GrantSpec, *, whole: bool = False, title: str = "", version: str = "") -> Asked:
    shown = spec.describe()
    return Asked(dataset=dataset, variables=tuple(shown["variables"]), period=shown["period"],
                 criteria=shown["criteria"], justification=spec.justification, whole=whole, title=title,
                 version=version)


def requested(session: Session, project: Project) -> tuple[Asked, ...]:
    specs = project.requested_specs
    if specs is None:  # an application made without the form's variables: whole datasets
        return tuple(Asked(dataset=d, variables=(), period=None, whole=True) for d in project.requested_datasets)
    return tuple(asked_of(d, GrantSpec.from_json(specs[d])) for d in project.requested_datasets if d in specs)


def granted_of(session: Session, grant: Grant) -> Asked:
    """What a grant gives; one recorded without a spec gives its whole dataset version."""
    if grant.spec is not None:
        spec, whole = GrantSpec.from_json(grant.spec), False
    else:
        version = session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))
        spec, whole = whole_dataset(version.tables if version else {}), True
    return asked_of(grant.dataset_slug, spec, whole=whole, title=grant.dataset.title, version=grant.dataset_version)


# --- extracts: progress, people, linkage, never a person ------------------------------------------


@dataclass(frozen=True)
class ExtractLine:
    project: str
    dataset: str
    version: str
    status: str  # queued, building, ready, failed, superseded
    progress: int  # 0..100
    people: int | None
    linked: int | None
    cohort_people: int | None
    finished_at: dt.datetime | None

    @property
    def linkage_rate(self) -> float | None:
        return self.linked / self.cohort_people if self.cohort_people else None


def _extract_line(extract: Any) -> ExtractLine:
    return ExtractLine(project=extract.project_id, dataset=extract.dataset_slug, version=extract.version,
                       status=extract.status.value, progress=int(extract.progress or 0), people=extract.people,
                       linked=extract.linked, cohort_people=extract.cohort_people, finished_at=extract.finished_at)


def project_extracts(session: Session, slug: str, grants: list[Grant]) -> tuple[ExtractLine, ...]:
    """The newest extract of each dataset version the project is granted."""
    found = []
    for key in sorted({version_key(g.dataset_slug, g.dataset_version) for g in grants}):
        extract = jobs.latest(session, slug, key)
        if extract is not None:
            found.append(_extract_line(extract))
    return tuple(found)


@dataclass(frozen=True)
class ExtractsOverview:
    """The steward's view: the newest extract of each project's dataset version, and the register of
    objections as a count."""

    extracts: tuple[ExtractLine, ...]
    optouts: int


def extracts_overview(session: Session) -> ExtractsOverview:
    newest: dict[tuple[str, str], Any] = {}
    for extract in session.scalars(select(Extract).order_by(Extract.id.desc())):
        newest.setdefault((extract.project_id, extract.dataset_version_id), extract)
    return ExtractsOverview(extracts=tuple(_extract_line(e) for _, e in sorted(newest.items())),
                            optouts=session.scalar(select(func.count(OptOut.id))) or 0)


def granted_once(session: Session, grants: list[Grant]) -> tuple[Asked, ...]:
    """Each dataset version granted, with its variables and period; a grant renewed with the same
    spec shows once."""
    shown = {}
    for grant in sorted(grants, key=lambda g: (g.dataset_slug, g.starts_on, g.id)):
        asked = granted_of(session, grant)
        shown.setdefault((asked.dataset, asked.version, asked.variables, asked.period), asked)
    return tuple(shown.values())
