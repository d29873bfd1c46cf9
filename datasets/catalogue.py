"""The catalogue's people, and the loader of catalogue files (YAML) that data stewards and the demo
use; who may see what is answered by ``datasets.access``.

Everything here takes an open SQLAlchemy session, so callers choose the transaction and run it
off the event loop; the decisions themselves are plain functions of the rows.
"""

from __future__ import annotations

import datetime as dt
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
from datasets.grant_spec import GrantSpec, SpecError
from datasets.manifest import ManifestError
from datasets.quotas import SIZE_PATTERN
from datasets.versions import VersionError, manifest_of, record_version


def known_people(session: Session) -> dict[str, Person]:
    return {p.username: p for p in session.scalars(select(Person))}


def is_known(session: Session, username: str) -> bool:
    """Whether the catalogue knows this person (one row read, not every person's)."""
    return session.get(Person, username) is not None


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
    accredited_on: dt.date | None = None  # researcher accreditation (datasets/accreditation.py)
    accredited_until: dt.date | None = None

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
    # What exactly (datasets/grant_spec.py): tables and columns, period, criteria, linkage,
    # justification; checked against the version's manifest when loaded. None: the whole dataset.
    spec: dict[str, Any] | None = None


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
    project_quota: str | None = Field(default=None, pattern=SIZE_PATTERN)  # /project, e.g. 20G
    home_quota: str | None = Field(default=None, pattern=SIZE_PATTERN)  # each member's home
    tmp_quota: str | None = Field(default=None, pattern=SIZE_PATTERN)  # one workspace's /tmp
    # Overrides of the automatic disclosure checks' parameters, e.g. {threshold: 20}; checked by the egress service.
    disclosure_rules: dict[str, int | float | bool] = {}
    # Days its files are kept once closed (datasets/retention.py); None: TRE_PROJECT_RETENTION_DAYS.
    retention_days: int | None = Field(default=None, ge=0, le=36500)
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
        members = {m.username for m in project.members}
        for grant in project.grants:
            if not grant.approval_reference.strip():
                problems.append(f"project {project.slug}: grant of {grant.dataset} cites no approval reference "
                                "(approval_reference)")
            if grant.approved_by in members:
                problems.append(f"project {project.slug}: grant of {grant.dataset} approved by {grant.approved_by}, "
                                "a member of the project; another data steward approves it")
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


def load_catalogue(session: Session, catalogue: CatalogueFile, data_root: Path,
                   actor: str = "catalogue-file") -> dict[str, int]:
    """Insert or update everything in ``catalogue``; idempotent. Grants and memberships of a
    listed project are made the file's, so the file stays the record of what was approved.

    Memberships and grants change through the workflow's acts, as the pages' and the commands' do
    (one audit row per change, the separation of duties, an approval reference on every grant):
    a project's members are added by the data steward who approved its grants (its first grant's
    ``approved_by``); a project without grants (an application) records them as its application
    would, in the name of ``actor``."""
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
        if entry.accredited_until:  # else keep what a steward recorded with `tre people accredit`
            person.accredited_on, person.accredited_until = entry.accredited_on, entry.accredited_until
        session.add(person)
        counts["people"] += 1
    for entry in catalogue.datasets:
        directory = data_root / entry.storage_path
        if not directory.is_dir() and not directory.is_symlink():
            raise CatalogueFileError(
                f"dataset {entry.slug}: no files at {directory}. Put the dataset there "
                "(for the demo: `tre demo data`) and load the catalogue again."
            )
        try:
            manifest = manifest_of(data_root, entry.storage_path, describe=(entry.slug, entry.version))
        except ManifestError as exc:
            raise CatalogueFileError(f"dataset {entry.slug}: {exc}") from None
        dataset = session.get(Dataset, entry.slug) or Dataset(slug=entry.slug)
        for field in ("title", "description", "data_controller", "sensitivity", "version",
                      "storage_path", "licence"):
            setattr(dataset, field, getattr(entry, field))
        dataset.columns = [c.model_dump() for c in entry.columns]
        try:
            record_version(session, dataset, manifest, actor, data_root)
        except VersionError as exc:
            raise CatalogueFileError(f"dataset {entry.slug}: {exc}") from None
        counts["datasets"] += 1
    session.flush()
    for entry in catalogue.projects:
        project = session.get(Project, entry.slug) or Project(slug=entry.slug)
        for field in ("title", "lay_summary", "purpose", "public_interest", "principal_investigator",
                      "approval_reference", "starts_on", "ends_on", "status", "mem_limit", "cpu_limit",
                      "project_quota", "home_quota", "tmp_quota", "disclosure_rules",
                      "retention_days"):
            setattr(project, field, getattr(entry, field))
        session.add(project)
        session.flush()
        _load_members(session, project, entry, entry.grants[0].approved_by if entry.grants else actor)
        _load_grants(session, project, entry)
        session.flush()
        counts["projects"] += 1
    return counts


def _load_members(session: Session, project: Project, entry: ProjectEntry, decider: str) -> None:
    from datasets import workflow

    wanted = {m.username: m.role for m in entry.members}
    for membership in list(project.memberships):
        if membership.username not in wanted:
            workflow.leave(session, decider, membership)
        else:
            membership.role = wanted.pop(membership.username)  # the same member: the file's role
    for username, role in wanted.items():
        if entry.grants:
            workflow.add_member(session, decider, project.slug, username, role)
        else:  # an application: its members come with it, as apply_for_project records them
            workflow.join(session, decider, project, username, role)


def _load_grants(session: Session, project: Project, entry: ProjectEntry) -> None:
    """Grants with the same dataset and first day are the same grant: changed in place (one
    grant.changed row) when the file changes them, added through the act when new, and removed
    (one grant.revoked row) when the file no longer lists them."""
    from datasets import audit, workflow
    from datasets.audit import AuditAction

    listed = {(g.dataset, g.starts_on): g for g in entry.grants}
    for grant in list(project.grants):
        line = listed.pop((grant.dataset_slug, grant.starts_on), None)
        if line is None:
            project.grants.remove(grant)
            audit.record(session, grant.approved_by, AuditAction.GRANT_REVOKED, project=project.slug,
                         details={"dataset": grant.dataset_slug, "from": grant.starts_on.isoformat(),
                                  "removed_from_file": True})
            continue
        dataset = session.get(Dataset, line.dataset)
        changed = {"dataset_version": dataset.version, "ends_on": line.ends_on,
                   "approved_by": line.approved_by, "approval_reference": line.approval_reference,
                   "spec": _spec_json(session, project, line, dataset)}
        changed = {name: value for name, value in changed.items() if getattr(grant, name) != value}
        if changed:
            workflow.require_independent(session, line.approved_by, project)
            for name, value in changed.items():
                setattr(grant, name, value)
            audit.record(session, line.approved_by, AuditAction.GRANT_CHANGED, project=project.slug,
                         details={"dataset": grant.dataset_slug, "from": grant.starts_on.isoformat(),
                                  **{k: str(v) for k, v in changed.items() if k != "spec"},
                                  **({"spec_digest": GrantSpec.from_json(changed["spec"]).digest()
                                      if changed["spec"] else "whole dataset"} if "spec" in changed else {})})
    for line in listed.values():
        try:
            workflow.add_grant(session, line.approved_by, project.slug, line.dataset, starts_on=line.starts_on,
                               ends_on=line.ends_on, approval_reference=line.approval_reference, spec=line.spec)
        except SpecError as exc:
            raise CatalogueFileError(f"project {project.slug}: grant of {line.dataset}: {exc} "
                                     "Nothing was loaded.") from None


def _spec_json(session: Session, project: Project, line: GrantEntry, dataset: Dataset) -> dict | None:
    """The file's spec of a grant, checked against the dataset's newest version, in canonical form."""
    from datasets.models import DatasetVersion
    from datasets.workflow import checked_spec

    if line.spec is None:
        return None
    version = session.get(DatasetVersion, (dataset.slug, dataset.version))
    try:
        return checked_spec(dataset, version, line.spec).to_json()
    except SpecError as exc:
        raise CatalogueFileError(f"project {project.slug}: grant of {line.dataset}: {exc} Nothing was loaded.") from None
