"""THE access module: every "who may see what" question is answered here, and only here.

- ``workspace_access``: may this person start this project's workspace today, and with which
  dataset versions, each as the project's own extract (the spawner, the reconciler, the catalogue
  pages): a workspace mounts extracts, never datasets;
- ``projects_of``: the projects a person is a member of, for the home page and the pages;
- ``member_projects``: the projects a person may act for today (submit exports): a current member
  of a project in force (status and dates);
- ``projects_tied_to``: every project a person is or ever was a member of, or applied for (from
  the catalogue's membership history, never from the audit log): whom they may not judge;
- ``is_accredited_checker``: whether a person is an output checker today.

Everything takes an open SQLAlchemy session, so callers choose the transaction and run it off the
event loop; the decisions themselves are plain functions of the rows.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from datasets.grant_spec import GrantSpec, whole_dataset
from datasets.models import (STARTABLE_STATUSES, DatasetVersion, Extract, ExtractStatus, Grant, Membership,
                             MembershipRecord, Person, Project, VersionStatus, version_key)
from datasets.versions import steward_contacts


class Refusal(enum.StrEnum):
    """Why a workspace cannot start; each has a translated message in ``tre_core/locale``."""

    NOT_A_PROJECT = "not_a_project"
    NOT_A_MEMBER = "not_a_member"
    PROJECT_NOT_STARTABLE = "project_not_startable"
    PROJECT_NOT_STARTED = "project_not_started"
    PROJECT_ENDED = "project_ended"
    NO_DATASET_IN_FORCE = "no_dataset_in_force"
    GRANTS_NOT_STARTED = "grants_not_started"
    DATASET_INTEGRITY = "dataset_integrity"
    DATASET_SUSPENDED = "dataset_suspended"
    UNSAFE_FOLDER = "unsafe_folder"
    FIREWALL_MISSING = "firewall_missing"
    NO_IMAGE = "no_image"
    IMAGE_RETIRED = "image_retired"
    IMAGE_MISSING = "image_missing"
    NO_NODE_FOR_DATASETS = "no_node_for_datasets"
    NOT_ACCREDITED = "not_accredited"  # datasets/accreditation.py
    ACCREDITATION_EXPIRED = "accreditation_expired"
    STORAGE_UNAVAILABLE = "storage_unavailable"
    EXTRACT_FAILED = "extract_failed"


class AccessRefused(Exception):
    def __init__(self, reason: Refusal, **params: Any) -> None:
        self.reason = reason
        self.params = params
        super().__init__(f"{reason.value}: {params}")


@dataclass(frozen=True)
class ProjectExtract:
    """The project's extract of one granted dataset version, for the grant's current spec: what a
    workspace mounts at ``/data/<dataset>``. Ready (a path), or still being prepared (a progress)."""

    id: int | None
    ready: bool
    path: PurePosixPath | None = None  # relative to the extracts root: <project>/<dataset>@<version>
    root_hash: str = ""
    progress: int = 0  # 0..100 while it is being prepared


@dataclass(frozen=True)
class GrantedDataset:
    slug: str
    version: str
    storage_path: PurePosixPath  # of the dataset version, relative to the data root; never mounted
    ends_on: dt.date
    root_hash: str = ""
    # the version's manifest rows [path, size, sha256, inode, mtime_ns]
    files: tuple[tuple, ...] = ()
    grant_id: int | None = None
    extract: ProjectExtract | None = None


@dataclass(frozen=True)
class WorkspaceAccess:
    """What the catalogue allows one person in one project today: the input of a workspace plan."""

    username: str
    project: str
    project_title: str
    datasets: tuple[GrantedDataset, ...]
    mem_limit: str | None
    cpu_limit: float | None
    project_quota: str | None = None
    home_quota: str | None = None
    tmp_quota: str | None = None
    stewards: str = "the data stewards"  # whom a refusal tells to act

    @property
    def preparing(self) -> tuple[GrantedDataset, ...]:
        """The datasets whose extract is not ready yet: a start waits for them."""
        return tuple(d for d in self.datasets if d.extract is None or not d.extract.ready)

    @property
    def preparing_progress(self) -> int:
        """How far the preparation of the whole start is, in per cent (ready extracts count 100)."""
        if not self.datasets:
            return 100
        return sum(100 if d.extract and d.extract.ready else (d.extract.progress if d.extract else 0)
                   for d in self.datasets) // len(self.datasets)


@dataclass(frozen=True)
class ProjectSummary:
    slug: str
    title: str
    status: str
    ends_on: dt.date | None
    datasets: tuple[str, ...]
    role: str = "researcher"
    # why its workspace cannot start today, as far as the project's own rows tell (None: it may);
    # the home page offers Start only without one, and says when it opens otherwise
    refusal: AccessRefused | None = None
    opens_on: dt.date | None = None


def start_refusal(project: Project, username: str, today: dt.date) -> AccessRefused | None:
    """Why ``username`` may not start ``project``'s workspace today, from the project's own rows
    (membership, status, dates, grants), or None. The checks of dataset versions, images and the
    host come at the start itself (``workspace_access`` and the spawner)."""
    if username not in {m.username for m in project.memberships}:
        return AccessRefused(Refusal.NOT_A_MEMBER, project=project.slug, investigator=project.principal_investigator)
    if project.status not in STARTABLE_STATUSES:
        return AccessRefused(Refusal.PROJECT_NOT_STARTABLE, project=project.slug, status=project.status.value)
    if project.starts_on and today < project.starts_on:
        return AccessRefused(Refusal.PROJECT_NOT_STARTED, project=project.slug, date=project.starts_on.isoformat())
    if project.ends_on and today > project.ends_on:
        return AccessRefused(Refusal.PROJECT_ENDED, project=project.slug, date=project.ends_on.isoformat())
    if not any(g.in_force(today) for g in project.grants):
        return _no_grant_today(project, today)
    return None


def _no_grant_today(project: Project, today: dt.date) -> AccessRefused:
    """No grant in force today: one that opens later says when, or the grants have all ended."""
    upcoming = min((g.starts_on for g in project.grants if g.starts_on > today), default=None)
    if upcoming is not None:
        return AccessRefused(Refusal.GRANTS_NOT_STARTED, project=project.slug, date=upcoming.isoformat())
    return AccessRefused(Refusal.NO_DATASET_IN_FORCE, project=project.slug)


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
    if (refusal := start_refusal(project, username, today)) is not None:
        raise refusal
    stewards = ", ".join(steward_contacts(session)) or "the data stewards"
    granted = []
    for g in sorted(project.grants, key=lambda g: g.dataset_slug):
        # a grant is for the version it names: a newer version registered beside it is not seen
        # until the project is granted it; a retired version mounts nothing
        version = session.get(DatasetVersion, (g.dataset_slug, g.dataset_version)) if g.in_force(today) else None
        if version is None or version.status is VersionStatus.RETIRED:
            continue
        if version.status is VersionStatus.SUSPENDED:
            raise AccessRefused(Refusal.DATASET_SUSPENDED, dataset=g.dataset_slug, version=g.dataset_version,
                                stewards=stewards)
        granted.append(GrantedDataset(
            slug=g.dataset_slug, version=g.dataset_version, storage_path=PurePosixPath(version.storage_path),
            ends_on=g.ends_on, root_hash=version.root_hash, files=tuple(tuple(row) for row in version.files),
            grant_id=g.id, extract=project_extract(session, g, version, stewards)))
    granted = tuple(granted)
    if not granted:
        raise _no_grant_today(project, today)
    return WorkspaceAccess(
        username=username,
        project=project.slug,
        project_title=project.title,
        datasets=granted,
        mem_limit=project.mem_limit,
        cpu_limit=project.cpu_limit,
        project_quota=project.project_quota,
        home_quota=project.home_quota,
        tmp_quota=project.tmp_quota,
        stewards=stewards,
    )


def grant_spec_of(grant: Grant, version: DatasetVersion) -> GrantSpec:
    """What the grant gives: its spec, or the whole dataset version for a grant that names none."""
    return GrantSpec.from_json(grant.spec) if grant.spec is not None else whole_dataset(version.tables)


def project_extract(session: Session, grant: Grant, version: DatasetVersion, stewards: str) -> ProjectExtract | None:
    """The project's extract for the grant's current spec: the newest ready one (a rebuild under way
    keeps it in use until it is replaced), else the one being prepared, else None (none asked for
    yet). Raises ``AccessRefused(EXTRACT_FAILED)`` when the newest build for the spec failed."""
    rows = session.scalars(select(Extract).where(
        Extract.project_id == grant.project_slug,
        Extract.dataset_version_id == version_key(grant.dataset_slug, grant.dataset_version),
        Extract.spec_digest == grant_spec_of(grant, version).digest()).order_by(Extract.id.desc())).all()
    ready = next((e for e in rows if e.status is ExtractStatus.READY and e.path), None)
    if ready is not None:
        return ProjectExtract(id=ready.id, ready=True, path=PurePosixPath(ready.path), root_hash=ready.root_hash or "",
                              progress=100)
    newest = rows[0] if rows else None
    if newest is None or newest.status is ExtractStatus.SUPERSEDED:
        return None
    if newest.status is ExtractStatus.FAILED:
        raise AccessRefused(Refusal.EXTRACT_FAILED, dataset=grant.dataset_slug, project=grant.project_slug,
                            problem=(newest.error or "no reason recorded").strip()[:300], stewards=stewards)
    return ProjectExtract(id=newest.id, ready=False, progress=max(0, min(100, newest.progress or 0)))


def projects_of(session: Session, username: str, today: dt.date) -> list[ProjectSummary]:
    """The projects a person is a member of, with the datasets in force today, for the home page."""
    memberships = session.scalars(
        select(Membership)
        .where(Membership.username == username)
        .options(selectinload(Membership.project).selectinload(Project.grants),
                 selectinload(Membership.project).selectinload(Project.memberships))
    ).all()
    summaries = []
    for m in sorted(memberships, key=lambda m: m.project_slug):
        refusal = start_refusal(m.project, username, today)
        opens = refusal.params.get("date") if refusal and refusal.reason in (
            Refusal.PROJECT_NOT_STARTED, Refusal.GRANTS_NOT_STARTED) else None
        summaries.append(ProjectSummary(
            slug=m.project.slug,
            title=m.project.title,
            status=m.project.status.value,
            ends_on=m.project.ends_on,
            datasets=tuple(sorted(g.dataset_slug for g in m.project.grants if g.in_force(today))),
            role=m.role.value,
            refusal=refusal,
            opens_on=dt.date.fromisoformat(opens) if opens else None,
        ))
    return summaries


def member_projects(session: Session, username: str, today: dt.date) -> frozenset[str]:
    """The projects ``username`` may act for today: a current member, the project in force (a
    startable status, and today within its dates)."""
    projects = session.scalars(
        select(Project).join(Membership)
        .where(Membership.username == username, Project.status.in_(STARTABLE_STATUSES))
    ).all()
    return frozenset(p.slug for p in projects if _in_force(p, today))


def _in_force(project: Project, today: dt.date) -> bool:
    return not (project.starts_on and today < project.starts_on) and not (project.ends_on and today > project.ends_on)


def projects_tied_to(session: Session, username: str) -> frozenset[str]:
    """Every project ``username`` is or ever was a member of, or applied for: the ones whose
    requests, applications and grants they may not judge."""
    tied = set(session.scalars(select(MembershipRecord.project_slug).where(MembershipRecord.username == username)))
    tied |= set(session.scalars(select(Membership.project_slug).where(Membership.username == username)))
    tied |= set(session.scalars(select(Project.slug).where(Project.applicant == username)))
    return frozenset(tied)


def is_accredited_checker(session: Session, username: str, today: dt.date) -> bool:
    """Whether ``username`` is an accredited output checker today (the accreditation's last day included)."""
    until = session.scalar(select(Person.checker_accredited_until).where(Person.username == username))
    return until is not None and today <= until
