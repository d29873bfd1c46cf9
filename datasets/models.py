"""Typed SQLAlchemy models of the catalogue.

The schema changes only through Alembic migrations (``datasets/migrations``); ``tre db upgrade``
applies them. Slugs are the stable, human-readable keys used in URLs, server names and mounts.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, DateTime, Enum, ForeignKey, String, Text, UniqueConstraint
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
    # {"file name": "sha256 hex"}
    file_hashes: Mapped[dict[str, Any]] = mapped_column(default=dict)

    grants: Mapped[list[Grant]] = relationship(back_populates="dataset")


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
