"""Typed SQLAlchemy models of the catalogue.

The schema changes only through Alembic migrations (``datasets/migrations``); ``tre db upgrade``
applies them. Slugs are the stable, human-readable keys used in URLs, server names and mounts.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, DateTime, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SLUG = r"^[a-z][a-z0-9-]{1,62}[a-z0-9]$"
# Dataset slugs are folder names under /data, and the national databases use underscores.
DATASET_SLUG = r"^[a-z][a-z0-9_-]{1,62}[a-z0-9]$"


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ProjectStatus(enum.StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"


# Workspaces can start only in these states; the others explain themselves in refusals.
STARTABLE_STATUSES = frozenset({ProjectStatus.APPROVED, ProjectStatus.ACTIVE})


class MemberRole(enum.StrEnum):
    PRINCIPAL_INVESTIGATOR = "principal_investigator"
    RESEARCHER = "researcher"


class Person(Base):
    __tablename__ = "people"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_data_steward: Mapped[bool] = mapped_column(default=False)
    # An output checker is accredited until this date (inclusive); None means not a checker.
    checker_accredited_until: Mapped[dt.date | None] = mapped_column(Date)
    # The provider's ``sub`` this person signed in with first; another ``sub`` is refused (identity.py).
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)
    # Researcher accreditation (safe-researcher training): when, until when, recorded by whom (accreditation.py).
    accredited_on: Mapped[dt.date | None] = mapped_column(Date)
    accredited_until: Mapped[dt.date | None] = mapped_column(Date)
    accredited_by: Mapped[str | None] = mapped_column(String(64))

    memberships: Mapped[list[Membership]] = relationship(back_populates="person")


class Dataset(Base):
    __tablename__ = "datasets"

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    data_controller: Mapped[str] = mapped_column(String(200))
    sensitivity: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))
    # Relative to the data root; the spawner refuses anything that escapes it.
    storage_path: Mapped[str] = mapped_column(String(500))
    row_count: Mapped[int | None]
    licence: Mapped[str] = mapped_column(Text, default="")
    # [{"name", "type", "description", "identifier": "direct"|"indirect"|null}]
    columns: Mapped[list[Any]] = mapped_column(default=list)
    # {"relative path": "sha256 hex"} of the newest version (its manifest: ``versions``)
    file_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)

    grants: Mapped[list[Grant]] = relationship(back_populates="dataset")
    versions: Mapped[list[DatasetVersion]] = relationship(back_populates="dataset", order_by="DatasetVersion.registered_at")


class VersionStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"  # failed a check: mounts nothing until a steward registers it again
    RETIRED = "retired"  # replaced: grants naming it mount nothing


class DatasetVersion(Base):
    """One registered, immutable version of a dataset: its manifest (every file's path, size,
    sha256, inode and mtime), the root hash over it, and what its Parquet footers say."""

    __tablename__ = "dataset_versions"

    dataset_slug: Mapped[str] = mapped_column(ForeignKey("datasets.slug"), primary_key=True)
    version: Mapped[str] = mapped_column(String(32), primary_key=True)
    storage_path: Mapped[str] = mapped_column(String(500))
    root_hash: Mapped[str] = mapped_column(String(64))
    # [[path, size, sha256, inode, mtime_ns], ...] sorted by path
    files: Mapped[list[Any]] = mapped_column(default=list)
    # {table: {"schema": [[name, type]], "partitions": [...], "partition_keys": [...], "rows", "files", "bytes"}}
    tables: Mapped[dict[str, Any]] = mapped_column(default=dict)
    row_count: Mapped[int] = mapped_column(BigInteger, default=0)
    byte_count: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[VersionStatus] = mapped_column(
        Enum(VersionStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=VersionStatus.ACTIVE,
    )
    status_reason: Mapped[str | None] = mapped_column(Text)
    registered_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    registered_by: Mapped[str] = mapped_column(String(64))
    scrubbed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (CheckConstraint("egress_reviews_required >= 2", name="ck_projects_egress_two_reviews"),)

    slug: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    lay_summary: Mapped[str] = mapped_column(Text, default="")
    purpose: Mapped[str] = mapped_column(Text, default="")
    public_interest: Mapped[str] = mapped_column(Text, default="")
    principal_investigator: Mapped[str] = mapped_column(String(200))
    approval_reference: Mapped[str | None] = mapped_column(String(100))
    starts_on: Mapped[dt.date | None] = mapped_column(Date)
    ends_on: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[ProjectStatus] = mapped_column(
        Enum(ProjectStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=ProjectStatus.REQUESTED,
    )
    # Per-project resource limits; None falls back to the platform defaults in settings.
    mem_limit: Mapped[str | None] = mapped_column(String(16))
    cpu_limit: Mapped[float | None]
    # Storage quotas, Docker's size form (20G); none: the settings' defaults (datasets/quotas.py)
    project_quota: Mapped[str | None] = mapped_column(String(16))
    home_quota: Mapped[str | None] = mapped_column(String(16))
    tmp_quota: Mapped[str | None] = mapped_column(String(16))
    # The application: who asked, for which datasets, and what the steward decided.
    applicant: Mapped[str | None] = mapped_column(String(64))
    requested_datasets: Mapped[list[Any]] = mapped_column(default=list)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # The analysis image its workspaces run, pinned by digest; None means the platform default.
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", name="fk_projects_image_id_images"))
    image: Mapped[AnalysisImage | None] = relationship(back_populates="projects")
    # Independent output-checker reviews an export request needs; never fewer than two.
    egress_reviews_required: Mapped[int] = mapped_column(default=2, server_default="2")
    # Overrides of the automatic disclosure checks' parameters (egress_review.checks.params), e.g.
    # {"threshold": 20}; {} keeps ACRO's defaults.
    disclosure_rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # Lifecycle (retention.py): the day it closed, days its files are kept after that (None: the
    # platform's default), and when they were archived and wiped.
    closed_on: Mapped[dt.date | None] = mapped_column(Date)
    retention_days: Mapped[int | None]
    archived_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )
    grants: Mapped[list[Grant]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Membership(Base):
    __tablename__ = "memberships"

    project_slug: Mapped[str] = mapped_column(ForeignKey("projects.slug"), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("people.username"), primary_key=True)
    role: Mapped[MemberRole] = mapped_column(
        Enum(MemberRole, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e]),
        default=MemberRole.RESEARCHER,
    )

    project: Mapped[Project] = relationship(back_populates="memberships")
    person: Mapped[Person] = relationship(back_populates="memberships")


class MembershipRecord(Base):
    """One membership as it was: who, which project, from when, until when (None: still a member).

    Written by the workflow acts beside ``Membership`` (which holds only the current ones), so that
    "which projects is this person tied to?" is a question to the catalogue, not to the audit log.
    """

    __tablename__ = "membership_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_slug: Mapped[str] = mapped_column(ForeignKey("projects.slug", name="fk_membership_history_project_slug_projects"))
    username: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(32))
    added_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    added_by: Mapped[str] = mapped_column(String(64))
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    removed_by: Mapped[str | None] = mapped_column(String(64))


class Grant(Base):
    """A project may use a dataset version from ``starts_on`` until ``ends_on`` (inclusive)."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("project_slug", "dataset_slug", "starts_on"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_slug: Mapped[str] = mapped_column(ForeignKey("projects.slug"))
    dataset_slug: Mapped[str] = mapped_column(ForeignKey("datasets.slug"))
    dataset_version: Mapped[str] = mapped_column(String(32))
    starts_on: Mapped[dt.date] = mapped_column(Date)
    ends_on: Mapped[dt.date] = mapped_column(Date)
    approved_by: Mapped[str] = mapped_column(String(64))
    approval_reference: Mapped[str] = mapped_column(String(100))
    # What exactly is granted (datasets/grant_spec.py, GrantSpec.to_json); None: the whole dataset.
    spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    project: Mapped[Project] = relationship(back_populates="grants")
    dataset: Mapped[Dataset] = relationship(back_populates="grants")

    def in_force(self, on: dt.date) -> bool:
        return self.starts_on <= on <= self.ends_on


class ImageStatus(enum.StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # starts nothing new; servers already running on it keep running


class AnalysisImage(Base):
    """One build of an analysis image: what it is (digest), what it came from, what it holds.

    ``digest`` is the engine's image id (``sha256:...``): an enclave has no registry to give
    repository digests, and the id names the exact file systems and configuration that run.
    """

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int]  # a counter per name: 1, 2, ...
    digest: Mapped[str] = mapped_column(String(80), unique=True)
    dockerfile: Mapped[str] = mapped_column(Text, default="")
    build_args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    built_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    built_by: Mapped[str] = mapped_column(String(64))
    # A CycloneDX 1.5 bill of materials: Python packages of the venv and Debian packages.
    sbom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[ImageStatus] = mapped_column(
        Enum(ImageStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=ImageStatus.ACTIVE,
    )
    retired_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    retired_by: Mapped[str | None] = mapped_column(String(64))

    projects: Mapped[list[Project]] = relationship(back_populates="image")

    @property
    def reference(self) -> str:
        return f"{self.name}:{self.version}"


class AuditEvent(Base):
    """One row of the hash-chained audit log; written only through ``datasets.audit.record``."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, stored as text so it hashes as written
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    project: Mapped[str | None] = mapped_column(String(64), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    previous_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's last sequence number and hash; one row, updated by every append."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    seq: Mapped[int]
    hash: Mapped[str] = mapped_column(String(64))


class FileReadDay(Base):
    """How many bytes of file content one person's workspaces showed in the browser on one day
    (UTC), kept by the hub's file-reads API (hub/file_reads.py) against the daily threshold."""

    __tablename__ = "file_read_days"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    bytes_read: Mapped[int] = mapped_column(BigInteger, default=0)
    reads: Mapped[int] = mapped_column(default=0)
    # when the threshold was first reached that day (the stewards are alerted once)
    blocked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ExtractStatus(enum.StrEnum):
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    SUPERSEDED = "superseded"  # a newer extract of the same grant is ready (new spec, opt-outs)


def version_key(dataset_slug: str, version: str) -> str:
    """``Extract.dataset_version_id``: a dataset version named as its extract folder is, ``claims@2024.1``."""
    return f"{dataset_slug}@{version}"


class Extract(Base):
    """One project's extract of one dataset version, for one grant spec (built by ``extracts.build``)."""

    __tablename__ = "extracts"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.slug", name="fk_extracts_project_id_projects"),
                                            index=True)
    dataset_version_id: Mapped[str] = mapped_column(String(100))  # version_key(dataset, version)
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("grants.id", name="fk_extracts_grant_id_grants", ondelete="SET NULL"))
    spec_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[ExtractStatus] = mapped_column(
        Enum(ExtractStatus, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e]),
        default=ExtractStatus.QUEUED)
    progress: Mapped[int] = mapped_column(default=0)  # 0..100
    path: Mapped[str | None] = mapped_column(String(500))  # relative to TRE_EXTRACTS_ROOT, once ready
    root_hash: Mapped[str | None] = mapped_column(String(64))
    people: Mapped[int | None] = mapped_column(BigInteger)  # distinct people in the extract
    linked: Mapped[int | None] = mapped_column(BigInteger)  # cohort people found by the linkage table
    cohort_people: Mapped[int | None] = mapped_column(BigInteger)  # people in the cohort
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # the newest opt-out (OptOut.id) left out of this extract: older than the register, it is rebuilt
    optout_generation: Mapped[int] = mapped_column(BigInteger, default=0)

    @property
    def dataset_slug(self) -> str:
        return self.dataset_version_id.rsplit("@", 1)[0]

    @property
    def version(self) -> str:
        return self.dataset_version_id.rsplit("@", 1)[1]

    @property
    def linkage_rate(self) -> float | None:
        """People found / people in the cohort (HDH judges 90 % a success); None without linkage."""
        return self.linked / self.cohort_people if self.cohort_people else None


class OptOut(Base):
    """One person's objection, by database pseudonym (never a name): left out of every extract."""

    __tablename__ = "optouts"
    __table_args__ = (UniqueConstraint("person_key", name="uq_optouts_person_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_key: Mapped[str] = mapped_column(String(64))
    objected_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    recorded_by: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
