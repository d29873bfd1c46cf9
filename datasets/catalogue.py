"""Who may see what: the questions the hub and the spawner ask the catalogue, and the loader of
catalogue files (YAML) that data stewards and the demo use.

Everything here takes an open SQLAlchemy session, so callers choose the transaction and run it
off the event loop; the decisions themselves are plain functions of the rows.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datasets.models import (
    DATASET_SLUG,
    SLUG,
    STARTABLE_STATUSES,
    Dataset,
    Grant,
    Membership,
    MemberRole,
    Person,
    Project,
    ProjectStatus,
)


class Refusal(enum.StrEnum):
    """Why a workspace cannot start; each has a translated message in ``datasets/locale``."""

    NOT_A_PROJECT = "not_a_project"
    NOT_A_MEMBER = "not_a_member"
    PROJECT_NOT_STARTABLE = "project_not_startable"
    PROJECT_NOT_STARTED = "project_not_started"
    PROJECT_ENDED = "project_ended"
    NO_DATASET_IN_FORCE = "no_dataset_in_force"
    DATASET_INTEGRITY = "dataset_integrity"
    UNSAFE_FOLDER = "unsafe_folder"
    FIREWALL_MISSING = "firewall_missing"
    NO_IMAGE = "no_image"
    IMAGE_RETIRED = "image_retired"
    IMAGE_MISSING = "image_missing"
    NO_NODE_FOR_DATASETS = "no_node_for_datasets"


class AccessRefused(Exception):
    def __init__(self, reason: Refusal, **params: Any) -> None:
        self.reason = reason
        self.params = params
        super().__init__(f"{reason.value}: {params}")


@dataclass(frozen=True)
class GrantedDataset:
    slug: str
    version: str
    storage_path: PurePosixPath  # relative to the data root
    ends_on: dt.date
    file_hashes: tuple[tuple[str, str], ...] = ()  # (file name, sha256) as registered


@dataclass(frozen=True)
class WorkspaceAccess:
    """What the catalogue allows one person in one project today: the input of a workspace plan."""

    username: str
    project: str
    project_title: str
    datasets: tuple[GrantedDataset, ...]
    mem_limit: str | None
    cpu_limit: float | None


@dataclass(frozen=True)
class ProjectSummary:
    slug: str
    title: str
    status: str
    ends_on: dt.date | None
    datasets: tuple[str, ...]


def workspace_access(session: Session, username: str, project_slug: str, today: dt.date) -> WorkspaceAccess:
    """Decide whether ``username`` may start a workspace of ``project_slug`` today, and with what.

    Raises AccessRefused with the reason a person can act on.
    """
    project = session.scalars(
        select(Project)
        .where(Project.slug == project_slug)
        .options(selectinload(Project.memberships), selectinload(Project.grants).selectinload(Grant.dataset))
    ).one_or_none()
    if project is None:
        raise AccessRefused(Refusal.NOT_A_PROJECT, project=project_slug)
    if username not in {m.username for m in project.memberships}:
        raise AccessRefused(Refusal.NOT_A_MEMBER, project=project.slug,
                            investigator=project.principal_investigator)
    if project.status not in STARTABLE_STATUSES:
        raise AccessRefused(Refusal.PROJECT_NOT_STARTABLE, project=project.slug, status=project.status.value)
    if project.starts_on and today < project.starts_on:
        raise AccessRefused(Refusal.PROJECT_NOT_STARTED, project=project.slug, date=project.starts_on.isoformat())
    if project.ends_on and today > project.ends_on:
        raise AccessRefused(Refusal.PROJECT_ENDED, project=project.slug, date=project.ends_on.isoformat())
    granted = tuple(
        GrantedDataset(
            slug=g.dataset.slug,
            version=g.dataset_version,
            storage_path=PurePosixPath(g.dataset.storage_path),
            ends_on=g.ends_on,
            file_hashes=tuple(sorted(g.dataset.file_hashes.items())),
        )
        for g in sorted(project.grants, key=lambda g: g.dataset_slug)
        # a grant is for the version it names: once a steward registers a new version (new files
        # under the same folder), the project must be granted that version before it sees it
        if g.in_force(today) and g.dataset_version == g.dataset.version
    )
    if not granted:
        raise AccessRefused(Refusal.NO_DATASET_IN_FORCE, project=project.slug)
    return WorkspaceAccess(
        username=username,
        project=project.slug,
        project_title=project.title,
        datasets=granted,
        mem_limit=project.mem_limit,
        cpu_limit=project.cpu_limit,
    )


def projects_of(session: Session, username: str, today: dt.date) -> list[ProjectSummary]:
    """The projects a person is a member of, with the datasets in force today, for the home page."""
    memberships = session.scalars(
        select(Membership)
        .where(Membership.username == username)
        .options(selectinload(Membership.project).selectinload(Project.grants))
    ).all()
    return [
        ProjectSummary(
            slug=m.project.slug,
            title=m.project.title,
            status=m.project.status.value,
            ends_on=m.project.ends_on,
            datasets=tuple(sorted(g.dataset_slug for g in m.project.grants if g.in_force(today))),
        )
        for m in sorted(memberships, key=lambda m: m.project_slug)
    ]


def known_people(session: Session) -> dict[str, Person]:
    return {p.username: p for p in session.scalars(select(Person))}


# --------------------------------------------------------------------------------------------
# Catalogue files (YAML)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnEntry(_Strict):
    name: str
    type: str
    description: str = ""
    identifier: str | None = Field(default=None, pattern="^(direct|indirect)$")


class DatasetEntry(_Strict):
    slug: str = Field(pattern=DATASET_SLUG)
    title: str
    description: str = ""
    data_controller: str
    sensitivity: str
    version: str
    storage_path: str
    licence: str = ""
    columns: list[ColumnEntry] = []

    @field_validator("storage_path")
    @classmethod
    def _inside_data_root(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the data root, without '..'")
        return value


class PersonEntry(_Strict):
    username: str = Field(pattern=r"^[a-z][a-z0-9._-]{0,63}$")
    display_name: str
    email: str | None = None
    roles: list[str] = []
    checker_accredited_until: dt.date | None = None

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: list[str]) -> list[str]:
        unknown = set(value) - {"admin", "data_steward", "output_checker"}
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}; use admin, data_steward, output_checker")
        return value


class GrantEntry(_Strict):
    dataset: str
    starts_on: dt.date
    ends_on: dt.date
    approved_by: str
    approval_reference: str


class MemberEntry(_Strict):
    username: str
    role: MemberRole = MemberRole.RESEARCHER


class ProjectEntry(_Strict):
    slug: str = Field(pattern=SLUG)
    title: str
    lay_summary: str = ""
    purpose: str = ""
    public_interest: str = ""
    principal_investigator: str
    approval_reference: str | None = None
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    status: ProjectStatus = ProjectStatus.REQUESTED
    mem_limit: str | None = Field(default=None, pattern=r"^[1-9][0-9]*[kmgKMG]?$")  # Docker's form: 4G, 512m
    cpu_limit: float | None = Field(default=None, gt=0, le=64)
    # Overrides of the automatic disclosure checks' parameters, e.g. {threshold: 20}; checked by the egress service.
    disclosure_rules: dict[str, int | float | bool] = {}
    members: list[MemberEntry] = []
    grants: list[GrantEntry] = []


class CatalogueFile(_Strict):
    people: list[PersonEntry] = []
    datasets: list[DatasetEntry] = []
    projects: list[ProjectEntry] = []


class CatalogueFileError(ValueError):
    """A catalogue file that cannot be loaded; the message says where and how to fix it."""


def read_catalogue_file(path: Path) -> CatalogueFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise CatalogueFileError(f"{path}: no such file. Give the path of a catalogue YAML file.") from None
    except yaml.YAMLError as exc:
        raise CatalogueFileError(f"{path}: not valid YAML ({exc}). Fix the syntax and load it again.") from None
    try:
        catalogue = CatalogueFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise CatalogueFileError(f"{path}: {problems}. Nothing was loaded.") from None
    _check_references(path, catalogue)
    return catalogue


def _duplicates(values: list[str]) -> list[str]:
    seen, twice = set(), []
    for value in values:
        if value in seen and value not in twice:
            twice.append(value)
        seen.add(value)
    return twice


def _check_references(path: Path, catalogue: CatalogueFile, today: dt.date | None = None) -> None:
    """Everything a file can get wrong across entries, all reported at once; nothing is loaded
    while any remains."""
    today = today or dt.date.today()
    people = {p.username: p for p in catalogue.people}
    datasets = {d.slug for d in catalogue.datasets}
    problems = []
    for kind, keys in (("person", [p.username for p in catalogue.people]),
                       ("dataset", [d.slug for d in catalogue.datasets]),
                       ("project", [p.slug for p in catalogue.projects])):
        problems += [f"{kind} {key} is listed twice; keep one entry" for key in _duplicates(keys)]
    for person in catalogue.people:
        if "output_checker" in person.roles:
            if person.checker_accredited_until is None:
                problems.append(f"person {person.username}: an output checker needs checker_accredited_until")
            elif person.checker_accredited_until < today:
                problems.append(f"person {person.username}: the checker accreditation ended on "
                                f"{person.checker_accredited_until}; renew it (a later date) or drop the role")
    for project in catalogue.projects:
        if project.starts_on and project.ends_on and project.ends_on < project.starts_on:
            problems.append(f"project {project.slug}: ends ({project.ends_on}) before it starts ({project.starts_on})")
        if project.status in STARTABLE_STATUSES and not project.approval_reference:
            problems.append(f"project {project.slug}: an {project.status.value} project cites its approval "
                            "(approval_reference)")
        problems += [f"project {project.slug}: member {name} is listed twice"
                     for name in _duplicates([m.username for m in project.members])]
        for grant in project.grants:
            approver = people.get(grant.approved_by)
            if approver is None or not ({"data_steward", "admin"} & set(approver.roles)):
                problems.append(f"project {project.slug}: grant of {grant.dataset} approved by {grant.approved_by}, "
                                "who is not a data steward listed under people")
        for member in project.members:
            if member.username not in people:
                problems.append(f"project {project.slug}: member {member.username} is not listed under people")
        for grant in project.grants:
            if grant.dataset not in datasets:
                problems.append(f"project {project.slug}: grant names unknown dataset {grant.dataset}")
            if grant.ends_on < grant.starts_on:
                problems.append(f"project {project.slug}: grant of {grant.dataset} ends before it starts")
    if problems:
        raise CatalogueFileError(f"{path}: " + "; ".join(problems) + ". Nothing was loaded.")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_files(directory: Path) -> tuple[dict[str, str], int | None]:
    """sha256 of every data file of a dataset folder, and its row count from the Parquet footer."""
    import pyarrow.parquet as pq

    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    hashes = {p.name: sha256_of(p) for p in files}
    parquet = [p for p in files if p.suffix == ".parquet"]
    rows = sum(pq.read_metadata(p).num_rows for p in parquet) if parquet else None
    return hashes, rows


def _refuse_links_out(slug: str, data_root: Path, directory: Path) -> None:
    """A dataset folder is mounted as it is: no link may lead out of the data root, nor any file
    be a link (what a workspace reads must be what was hashed)."""
    root = data_root.resolve()
    if not directory.resolve().is_relative_to(root):
        raise CatalogueFileError(f"dataset {slug}: {directory} leads outside the data root {root} (a symbolic "
                                 "link); put the files under the data root itself. Nothing was loaded.")
    links = sorted(p.name for p in directory.iterdir() if p.is_symlink())
    if links:
        raise CatalogueFileError(f"dataset {slug}: {', '.join(links)} in {directory} are symbolic links; "
                                 "replace them with the files themselves. Nothing was loaded.")


def load_catalogue(session: Session, catalogue: CatalogueFile, data_root: Path) -> dict[str, int]:
    """Insert or update everything in ``catalogue``; idempotent. Grants and memberships of a
    listed project are replaced by the file's, so the file stays the record of what was approved."""
    counts = {"people": 0, "datasets": 0, "projects": 0}
    for entry in catalogue.people:
        person = session.get(Person, entry.username) or Person(username=entry.username)
        person.display_name = entry.display_name
        person.email = entry.email
        person.is_admin = "admin" in entry.roles
        person.is_data_steward = "data_steward" in entry.roles
        person.checker_accredited_until = (
            entry.checker_accredited_until if "output_checker" in entry.roles else None
        )
        session.add(person)
        counts["people"] += 1
    for entry in catalogue.datasets:
        directory = data_root / entry.storage_path
        if not directory.is_dir():
            raise CatalogueFileError(
                f"dataset {entry.slug}: no files at {directory}. Put the dataset there "
                "(for the demo: `tre demo data`) and load the catalogue again."
            )
        _refuse_links_out(entry.slug, data_root, directory)
        hashes, rows = describe_files(directory)
        dataset = session.get(Dataset, entry.slug) or Dataset(slug=entry.slug)
        for field in ("title", "description", "data_controller", "sensitivity", "version",
                      "storage_path", "licence"):
            setattr(dataset, field, getattr(entry, field))
        dataset.columns = [c.model_dump() for c in entry.columns]
        dataset.file_hashes = hashes
        dataset.row_count = rows
        session.add(dataset)
        counts["datasets"] += 1
    session.flush()
    for entry in catalogue.projects:
        project = session.get(Project, entry.slug) or Project(slug=entry.slug)
        for field in ("title", "lay_summary", "purpose", "public_interest", "principal_investigator",
                      "approval_reference", "starts_on", "ends_on", "status", "mem_limit", "cpu_limit",
                      "disclosure_rules"):
            setattr(project, field, getattr(entry, field))
        # Reuse rows with the same key, so that reloading the file updates instead of clashing.
        members = {m.username: m for m in project.memberships}
        project.memberships = [
            _updated(members.get(m.username) or Membership(username=m.username), role=m.role)
            for m in entry.members
        ]
        grants = {(g.dataset_slug, g.starts_on): g for g in project.grants}
        project.grants = [
            _updated(
                grants.get((g.dataset, g.starts_on)) or Grant(dataset_slug=g.dataset, starts_on=g.starts_on),
                dataset_version=session.get(Dataset, g.dataset).version,
                ends_on=g.ends_on,
                approved_by=g.approved_by,
                approval_reference=g.approval_reference,
            )
            for g in entry.grants
        ]
        session.add(project)
        session.flush()
        counts["projects"] += 1
    return counts


def _updated(row, **values):
    for name, value in values.items():
        setattr(row, name, value)
    return row
