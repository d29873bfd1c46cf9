"""Typed models of the package index, on the catalogue's ``Base``: one TRE database, one audit log.

``PackagePolicy`` rows say what a project's workspaces may install (one row with scope ``*`` for
the installation, one per project that differs from it). ``PackageRequest`` is a researcher's ask
and its decision; ``Distribution`` is one file the index serves (or served: removal keeps the row,
so the record says what was installable when). The schema changes only through migration 0011.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from datasets.models import Base

INSTALLATION = "*"


def _enum(kind: type[enum.Enum], length: int) -> Enum:
    return Enum(kind, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e])


class Policy(enum.StrEnum):
    NONE = "none"  # the index serves this project nothing
    PRE_APPROVED = "pre-approved"  # the installation's allowlist only
    ON_REQUEST = "any-approved-on-request"  # the allowlist and every package approved on request


class RequestState(enum.StrEnum):
    PENDING = "pending"
    REFUSED = "refused"
    PUBLISHED = "published"  # approved, fetched, hash-checked and served
    FAILED = "failed"  # approved, but the fetch or the checks failed: nothing was published
    REMOVED = "removed"  # was published; no new installs


class Source(enum.StrEnum):
    ALLOWLIST = "allowlist"
    REQUEST = "request"


class PackagePolicy(Base):
    __tablename__ = "package_policies"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # "*" or a project slug
    policy: Mapped[Policy] = mapped_column(_enum(Policy, 32))
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class PackageRequest(Base):
    __tablename__ = "package_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    specifier: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text)
    state: Mapped[RequestState] = mapped_column(_enum(RequestState, 16), default=RequestState.PENDING)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # What approving would bring: [{name, version, filename, size, sha256, licence, url}], filled by
    # `tre packages show`/the admin page from a dry-run resolution against the upstream index.
    closure: Mapped[list[Any]] = mapped_column(JSON, default=list)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    # read by the researcher's page and `tre packages status` ("you were told")
    outcome: Mapped[str | None] = mapped_column(Text)


class Distribution(Base):
    __tablename__ = "package_distributions"

    filename: Mapped[str] = mapped_column(String(300), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)  # normalised (PEP 503)
    version: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    source: Mapped[Source] = mapped_column(_enum(Source, 16))
    request_id: Mapped[int | None]
    published_by: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    removed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
