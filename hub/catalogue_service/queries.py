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

from datasets.access import AccessRefused, Refusal, projects_of, workspace_access
from datasets.grant_spec import PERSON_KEYS, needs_justification
from datasets.models import Dataset, DatasetVersion, Grant, Membership, Person, Project, ProjectStatus
from datasets.requested_data import DatasetSchema, schema_of
from datasets.versions import projects_granted
from hub.catalogue_service.granted import (Asked, ExtractLine, ExtractsOverview, extracts_overview,  # noqa: F401
                                           granted_of, granted_once, project_extracts)
from hub.catalogue_service.granted import requested as _asked

from hub.catalogue_service.forms import ApplicationContext


@dataclass(frozen=True)
class Viewer:
    """The person reading the page, as the catalogue knows them (None for anonymous readers)."""

    username: str
    display_name: str
    is_steward: bool
    is_admin: bool = False


def viewer(session: Session, username: str) -> Viewer | None:
    person = session.get(Person, username)
    if person is None:
        return None
    return Viewer(username=person.username, display_name=person.display_name,
                  is_steward=bool(person.is_data_steward or person.is_admin), is_admin=bool(person.is_admin))


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
    files: tuple[tuple[str, str], ...]  # (path, sha256) of the newest version
    versions: tuple[VersionCard, ...] = ()


@dataclass(frozen=True)
class TableCard:
    name: str
    rows: int
    files: int
    bytes: int
    partition_keys: tuple[str, ...]
    partitions: int


@dataclass(frozen=True)
class VersionCard:
    version: str
    status: str
    root_hash: str
    rows: int
    bytes: int
    files: int
    tables: tuple[TableCard, ...]
    projects: tuple[str, ...]  # granted it today


def _version_card(session: Session, slug: str, v: DatasetVersion, today: dt.date) -> VersionCard:
    return VersionCard(
        version=v.version, status=v.status.value, root_hash=v.root_hash, rows=v.row_count, bytes=v.byte_count,
        files=len(v.files), projects=tuple(projects_granted(session, slug, v.version, today)),
        tables=tuple(TableCard(name=slug if name == "." else name, rows=t["rows"], files=t["files"], bytes=t["bytes"],
                               partition_keys=tuple(t["partition_keys"]), partitions=len(t["partitions"]))
                     for name, t in sorted(v.tables.items())))


def dataset_cards(session: Session) -> list[DatasetCard]:
    today = dt.date.today()
    return [
        DatasetCard(
            slug=d.slug, title=d.title, description=d.description, data_controller=d.data_controller,
            sensitivity=d.sensitivity, version=d.version, row_count=d.row_count, licence=d.licence,
            columns=tuple(Column(name=c["name"], type=c["type"], description=c.get("description") or "",
                                 identifier=c.get("identifier")) for c in d.columns),
            files=tuple(sorted(d.file_hashes.items())),
            versions=tuple(_version_card(session, d.slug, v, today) for v in reversed(d.versions)),
        )
        for d in session.scalars(select(Dataset).order_by(Dataset.slug))
    ]


@dataclass(frozen=True)
class Variable:
    table: str
    name: str
    type: str
    identifier: str | None  # the catalogue's tag
    justified: bool  # granted only with a justification (direct identifiers, dates of birth)
    pseudonymised: bool = False  # the person key: handed out as the project's pseudonym person_id


@dataclass(frozen=True)
class DatasetChoice:
    """A dataset on the application form: its newest version's variables, table by table."""

    slug: str
    title: str
    version: str | None
    tables: tuple[tuple[str, tuple[Variable, ...]], ...]  # (table as shown, variables); not the linkage table

    def __iter__(self):  # (slug, title), as the form's dataset checkboxes read it
        return iter((self.slug, self.title))


def _choice(dataset: Dataset, schema: DatasetSchema | None) -> DatasetChoice:
    tables = []
    for table, info in sorted((schema.tables if schema else {}).items()):
        if table == schema.linkage:
            continue
        tables.append((dataset.slug if table == "." else table, tuple(
            Variable(table=table, name=name, type=kind, identifier=schema.tags.get(name),
                     justified=needs_justification(name, schema.tags), pseudonymised=name.lower() in PERSON_KEYS)
            for name, kind in info["schema"])))
    return DatasetChoice(slug=dataset.slug, title=dataset.title, version=schema.version if schema else None,
                         tables=tuple(tables))


def dataset_choices(session: Session) -> list[DatasetChoice]:
    """Every dataset with its variables, for the application form and the steward's amendments."""
    return [_choice(d, schema_of(session, d.slug)) for d in session.scalars(select(Dataset).order_by(Dataset.slug))]


def application_context(session: Session) -> ApplicationContext:
    slugs = list(session.scalars(select(Dataset.slug)))
    return ApplicationContext(
        datasets=frozenset(slugs),
        people=frozenset(session.scalars(select(Person.username))),
        projects=frozenset(session.scalars(select(Project.slug))),
        schemas={slug: schema for slug in slugs if (schema := schema_of(session, slug)) is not None},
    )


def dataset_schemas(session: Session) -> dict[str, DatasetSchema]:
    return application_context(session).schemas


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
    asked: tuple[Asked, ...] = ()  # what the application asks of each dataset
    granted: tuple[Asked, ...] = ()  # what each grant in force gives
    extracts: tuple[ExtractLine, ...] = ()  # the newest extract of each dataset version granted


def my_projects(session: Session, username: str, today: dt.date) -> list[MyProject]:
    projects = []
    for summary in projects_of(session, username, today):
        project = session.get(Project, summary.slug)
        try:
            workspace_access(session, username, project.slug, today)
            refusal = None
        except AccessRefused as refused:
            refusal = (refused.reason, dict(refused.params))
        in_force = sorted((g for g in project.grants if g.in_force(today)), key=lambda g: (g.dataset_slug, g.starts_on))
        projects.append(MyProject(
            slug=project.slug, title=project.title, status=project.status.value, role=summary.role,
            starts_on=project.starts_on, ends_on=project.ends_on, approval_reference=project.approval_reference,
            requested_datasets=tuple(project.requested_datasets or ()),
            grants_in_force=tuple(
                GrantLine(dataset=g.dataset_slug, version=g.dataset_version, starts_on=g.starts_on, ends_on=g.ends_on)
                for g in sorted(project.grants, key=lambda g: (g.dataset_slug, g.starts_on)) if g.in_force(today)
            ),
            decision_reason=project.decision_reason,
            refusal=refusal,
            asked=_asked(session, project),
            granted=tuple(granted_of(session, g) for g in in_force),
            extracts=project_extracts(session, project.slug, in_force),
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
    asked: tuple[Asked, ...] = ()
    requested_specs: dict[str, Any] | None = None  # as recorded, to fill the amendment form


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
            asked=_asked(session, p), requested_specs=dict(p.requested_specs) if p.requested_specs else None,
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
    datasets: tuple[Asked, ...]  # each dataset granted: its variables and period, never its data
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
            datasets=granted_once(session, p.grants),
            starts_on=p.starts_on, ends_on=p.ends_on, approval_reference=p.approval_reference,
        )
        for p in projects
    ]


# --- the analysis images, for admins ---------------------------------------------------------


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    ecosystem: str  # "python" or "debian"


@dataclass(frozen=True)
class ImageEntry:
    name: str
    version: int
    digest: str
    status: str
    built_at: dt.datetime
    built_by: str
    build_args: tuple[tuple[str, str], ...]
    retired_by: str | None
    projects: tuple[str, ...]  # pinned to it
    packages: tuple[Package, ...]

    @property
    def python_count(self) -> int:
        return sum(p.ecosystem == "python" for p in self.packages)

    @property
    def debian_count(self) -> int:
        return sum(p.ecosystem == "debian" for p in self.packages)


@dataclass(frozen=True)
class FailedBuild:
    name: str
    at: str
    by: str
    step: str


@dataclass(frozen=True)
class ImageRegistry:
    images: list[ImageEntry]
    failed_builds: list[FailedBuild]  # newest first
    default_image: str | None  # what projects without a pin run, NAME:VERSION
    unpinned_projects: tuple[str, ...]


def _packages(sbom: dict[str, Any]) -> tuple[Package, ...]:
    ecosystems = {"pkg:pypi/": "python", "pkg:deb/": "debian"}
    return tuple(
        Package(c["name"], c["version"], next((e for prefix, e in ecosystems.items()
                                               if c.get("purl", "").startswith(prefix)), "other"))
        for c in sbom.get("components", []))


def image_registry(session: Session, failed_builds: int = 10) -> ImageRegistry:
    """Every registered image with its packages and pinned projects, the last failed builds
    (from the audit log, since a failed build registers nothing) and the platform default."""
    from datasets.images import workspace_image
    from datasets.models import AnalysisImage, AuditEvent

    images = session.scalars(select(AnalysisImage).options(selectinload(AnalysisImage.projects))
                             .order_by(AnalysisImage.name, AnalysisImage.version.desc())).all()
    failures = session.scalars(select(AuditEvent).where(AuditEvent.action == "image.build_failed")
                               .order_by(AuditEvent.seq.desc()).limit(failed_builds)).all()
    unpinned = tuple(session.scalars(select(Project.slug).where(Project.image_id.is_(None)).order_by(Project.slug)))
    try:
        default = workspace_image(session, unpinned[0]) if unpinned else None
    except AccessRefused:
        default = None
    return ImageRegistry(
        images=[ImageEntry(
            name=i.name, version=i.version, digest=i.digest, status=i.status.value, built_at=i.built_at,
            built_by=i.built_by, build_args=tuple(sorted((str(k), str(v)) for k, v in i.build_args.items())),
            retired_by=i.retired_by, projects=tuple(sorted(p.slug for p in i.projects)), packages=_packages(i.sbom),
        ) for i in images],
        failed_builds=[FailedBuild(name=str(e.details.get("image", "")), at=e.at[:19].replace("T", " "), by=e.actor,
                                   step=str(e.details.get("step", ""))) for e in failures],
        default_image=f"{default.name}:{default.version}" if default else None,
        unpinned_projects=unpinned,
    )
