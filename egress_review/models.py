"""Typed models of export requests, on the catalogue's ``Base``: one TRE database, one audit log.

A request belongs to one project and one author; its files are grouped (each group says what the
files are and which disclosure control was applied); each file, once submitted, is frozen by its
sha256 in the service's store. A review is one checker's decision on one file; the request's state
follows from the reviews through ``egress_review.logic``. The schema changes only through the
Alembic migrations ``0004``, ``0007`` (one release per request), ``0009a`` (a Fail's override) and
``0013`` (the copy the checks ran on).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from datasets.models import Base


def _enum(kind: type[enum.Enum], length: int) -> Enum:
    return Enum(kind, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class RequestState(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    PARTIALLY_REVIEWED = "partially_reviewed"
    REVIEWED = "reviewed"
    RETURNED = "returned"
    APPROVED = "approved"  # a checker decided to release; files are being copied out
    RELEASED = "released"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class FileKind(enum.StrEnum):
    OUTPUT = "output"  # to be released
    SUPPORTING = "supporting"  # helps the checkers, never released


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CHANGES_REQUESTED = "changes_requested"


class ExportRequest(Base):
    __tablename__ = "egress_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_slug: Mapped[str] = mapped_column(ForeignKey("projects.slug"), index=True)
    author: Mapped[str] = mapped_column(ForeignKey("people.username"))
    title: Mapped[str] = mapped_column(String(200))
    state: Mapped[RequestState] = mapped_column(_enum(RequestState, 24), default=RequestState.DRAFT)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))

    groups: Mapped[list[FileGroup]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                   order_by="FileGroup.name")
    files: Mapped[list[RequestFile]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                    order_by="RequestFile.id")
    comments: Mapped[list[Comment]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                   order_by="Comment.id")


class FileGroup(Base):
    """Files that go together, with what they are (context) and how they were protected (controls)."""

    __tablename__ = "egress_groups"
    __table_args__ = (UniqueConstraint("request_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("egress_requests.id"))
    name: Mapped[str] = mapped_column(String(100))
    context: Mapped[str] = mapped_column(Text, default="")
    controls: Mapped[str] = mapped_column(Text, default="")

    request: Mapped[ExportRequest] = relationship(back_populates="groups")


class RequestFile(Base):
    __tablename__ = "egress_files"
    __table_args__ = (UniqueConstraint("request_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("egress_requests.id"), index=True)
    group_name: Mapped[str] = mapped_column(String(100))
    # Relative to the project's workspace (/project in a workspace), as the researcher chose it.
    path: Mapped[str] = mapped_column(String(1000))
    kind: Mapped[FileKind] = mapped_column(_enum(FileKind, 16))
    # Set when the request is submitted: the frozen content in the store, by its digest.
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None]
    # Automatic check results ([] until a rule exists), as egress_review.checks writes them.
    checks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The copy in the store those checks ran on: taken when the file is added or replaced (so the
    # researcher sees the verdicts before submitting), then the frozen copy (migration ``0013``).
    checked_sha256: Mapped[str | None] = mapped_column(String(64))

    request: Mapped[ExportRequest] = relationship(back_populates="files")
    reviews: Mapped[list[Review]] = relationship(back_populates="file", cascade="all, delete-orphan",
                                                 order_by="Review.id")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class Review(Base):
    """One checker's decision on one file; replacing the file deletes its reviews."""

    __tablename__ = "egress_reviews"
    __table_args__ = (UniqueConstraint("file_id", "reviewer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("egress_files.id"), index=True)
    reviewer: Mapped[str] = mapped_column(ForeignKey("people.username"))
    decision: Mapped[Decision] = mapped_column(_enum(Decision, 24))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # Why the checker approves a file the automatic checks failed (``policies.check_override``).
    override_reason: Mapped[str | None] = mapped_column(Text)

    file: Mapped[RequestFile] = relationship(back_populates="reviews")


class Comment(Base):
    """A comment on a request or one of its files; private to checkers unless made visible."""

    __tablename__ = "egress_comments"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("egress_requests.id"), index=True)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("egress_files.id", ondelete="SET NULL"))
    author: Mapped[str] = mapped_column(ForeignKey("people.username"))
    text: Mapped[str] = mapped_column(Text)
    visible_to_researcher: Mapped[bool] = mapped_column(default=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    request: Mapped[ExportRequest] = relationship(back_populates="comments")


class Release(Base):
    """The one release of a request: by whom, when, and the digest of its signed decision record.
    The request is the key, so the database itself refuses a second release of one request, whatever
    coordinates the service's replicas (migration ``0007``)."""

    __tablename__ = "egress_releases"

    request_id: Mapped[int] = mapped_column(ForeignKey("egress_requests.id"), primary_key=True)
    released_by: Mapped[str] = mapped_column(String(64))
    released_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # sha256 of decision.json as written; none for requests released before migration 0007
    record_sha256: Mapped[str | None] = mapped_column(String(64))
