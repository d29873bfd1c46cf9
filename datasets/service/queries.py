"""What each catalogue page shows, read from the catalogue as plain frozen values.

Each function takes an open session and returns values that no longer need it, so the pages run
them in a worker thread and render after the session is closed. Nothing here changes the catalogue;
changes go through ``datasets.workflow``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datasets.catalogue import AccessRefused, Refusal, workspace_access
from datasets.models import Dataset, Grant, Membership, Person, Project, ProjectStatus

from datasets.service.forms import ApplicationContext


@dataclass(frozen=True)
class Viewer:
    """The person reading the page, as the catalogue knows them (None for anonymous readers)."""

    username: str
    display_name: str
    is_steward: bool


def viewer(session: Session, username: str) -> Viewer | None:
    person = session.get(Person, username)
    if person is None:
        return None
    return Viewer(username=person.username, display_name=person.display_name,
                  is_steward=bool(person.is_data_steward or person.is_admin))


# --- the dataset catalogue: metadata and schema, never data ------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str
    identifier: str | None  # "direct", "indirect" or None


@dataclass(frozen=True)
class DatasetCard:
    slug: str
    title: str
    description: str
    data_controller: str
    sensitivity: str
    version: str
    row_count: int | None
    licence: str
    columns: tuple[Column, ...]
    files: tuple[tuple[str, str], ...]  # (file name, sha256)


def dataset_cards(session: Session) -> list[DatasetCard]:
    return [
        DatasetCard(
            slug=d.slug, title=d.title, description=d.description, data_controller=d.data_controller,
            sensitivity=d.sensitivity, version=d.version, row_count=d.row_count, licence=d.licence,
            columns=tuple(Column(name=c["name"], type=c["type"], description=c.get("description") or "",
                                 identifier=c.get("identifier")) for c in d.columns),
            files=tuple(sorted(d.file_hashes.items())),
        )
        for d in session.scalars(select(Dataset).order_by(Dataset.slug))
    ]


def dataset_choices(session: Session) -> list[tuple[str, str]]:
    """(slug, title) of every dataset, for the application form's checkboxes."""
    return [(d.slug, d.title) for d in session.scalars(select(Dataset).order_by(Dataset.slug))]


def application_context(session: Session) -> ApplicationContext:
    return ApplicationContext(
        datasets=frozenset(session.scalars(select(Dataset.slug))),
        people=frozenset(session.scalars(select(Person.username))),
        projects=frozenset(session.scalars(select(Project.slug))),
    )


# --- my projects ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantLine:
    dataset: str
    version: str
    starts_on: dt.date
    ends_on: dt.date


@dataclass(frozen=True)
class MyProject:
    slug: str
    title: str
    status: str
    role: str
    starts_on: dt.date | None
    ends_on: dt.date | None
    approval_reference: str | None
    requested_datasets: tuple[str, ...]
    grants_in_force: tuple[GrantLine, ...]
    decision_reason: str | None
    # Why a workspace cannot start today (a Refusal and its parameters), or None when it can.
    refusal: tuple[Refusal, dict[str, Any]] | None


def my_projects(session: Session, username: str, today: dt.date) -> list[MyProject]:
    memberships = session.scalars(
        select(Membership).where(Membership.username == username)
        .options(selectinload(Membership.project).selectinload(Project.grants))
    ).all()
    projects = []
    for m in sorted(memberships, key=lambda m: m.project_slug):
        project = m.project
        try:
            workspace_access(session, username, project.slug, today)
            refusal = None
        except AccessRefused as refused:
            refusal = (refused.reason, dict(refused.params))
        projects.append(MyProject(
            slug=project.slug, title=project.title, status=project.status.value, role=m.role.value,
            starts_on=project.starts_on, ends_on=project.ends_on, approval_reference=project.approval_reference,
            requested_datasets=tuple(project.requested_datasets or ()),
            grants_in_force=tuple(
                GrantLine(dataset=g.dataset_slug, version=g.dataset_version, starts_on=g.starts_on, ends_on=g.ends_on)
                for g in sorted(project.grants, key=lambda g: (g.dataset_slug, g.starts_on)) if g.in_force(today)
            ),
            decision_reason=project.decision_reason,
            refusal=refusal,
        ))
    return projects


# --- the data steward's queue --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    username: str
    display_name: str
    role: str


@dataclass(frozen=True)
class Application:
    slug: str
    title: str
    lay_summary: str
    purpose: str
    public_interest: str
    applicant: str | None
    members: tuple[Member, ...]
    requested_datasets: tuple[str, ...]
    starts_on: dt.date | None
    ends_on: dt.date | None


def steward_queue(session: Session) -> list[Application]:
    """Applications waiting for a decision, oldest short name first."""
    projects = session.scalars(
        select(Project).where(Project.status == ProjectStatus.REQUESTED).order_by(Project.slug)
        .options(selectinload(Project.memberships).selectinload(Membership.person))
    ).all()
    return [
        Application(
            slug=p.slug, title=p.title, lay_summary=p.lay_summary, purpose=p.purpose,
            public_interest=p.public_interest, applicant=p.applicant,
            members=tuple(Member(username=m.username, display_name=m.person.display_name, role=m.role.value)
                          for m in sorted(p.memberships, key=lambda m: (m.role.value != "principal_investigator",
                                                                         m.username))),
            requested_datasets=tuple(p.requested_datasets or ()), starts_on=p.starts_on, ends_on=p.ends_on,
        )
        for p in projects
    ]


# --- the public register -------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterEntry:
    """What the public may know of an approved project: never who works on it."""

    slug: str
    title: str
    lay_summary: str
    public_interest: str
    status: str
    datasets: tuple[tuple[str, str], ...]  # (slug, title)
    starts_on: dt.date | None
    ends_on: dt.date | None
    approval_reference: str


def public_register(session: Session) -> list[RegisterEntry]:
    """Every project a data steward approved, including suspended and closed ones; refused
    applications (closed without an approval) and pending ones are not on it."""
    projects = session.scalars(
        select(Project).where(Project.approval_reference.is_not(None), Project.status != ProjectStatus.REQUESTED)
        .options(selectinload(Project.grants).selectinload(Grant.dataset))
    ).all()
    # Newest first; sorted here because SQLite and PostgreSQL place missing dates differently.
    projects = sorted(projects, key=lambda p: (-(p.starts_on or dt.date.min).toordinal(), p.slug))
    return [
        RegisterEntry(
            slug=p.slug, title=p.title, lay_summary=p.lay_summary, public_interest=p.public_interest,
            status=p.status.value,
            datasets=tuple(sorted({(g.dataset.slug, g.dataset.title) for g in p.grants})),
            starts_on=p.starts_on, ends_on=p.ends_on, approval_reference=p.approval_reference,
        )
        for p in projects
    ]
