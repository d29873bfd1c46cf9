"""The audit log: every security-relevant act, one append-only, hash-chained row.

Each row's hash covers its own content and the previous row's hash, so changing, deleting or
inserting a row breaks the chain from that row on; ``verify`` names the first bad row. Appends are
serialised through a one-row head table (an UPDATE takes the write lock on SQLite and the row lock
on PostgreSQL), so concurrent writers never fork the chain.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from datasets.models import AuditEvent, AuditHead
from tre_core import process

GENESIS = "0" * 64


class AuditAction(enum.StrEnum):
    LOGIN = "login"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    WORKSPACE_START = "workspace.start"
    WORKSPACE_REFUSED = "workspace.refused"
    WORKSPACE_STOP = "workspace.stop"
    CATALOGUE_LOAD = "catalogue.load"
    PROJECT_APPLIED = "project.applied"
    PROJECT_APPROVED = "project.approved"
    PROJECT_REFUSED = "project.refused"
    PROJECT_STATUS = "project.status"
    MEMBER_ADDED = "member.added"
    MEMBER_REMOVED = "member.removed"
    GRANT_ADDED = "grant.added"
    GRANT_REVOKED = "grant.revoked"
    GRANT_CHANGED = "grant.changed"
    ROLE_CHANGED = "role.changed"
    DATASET_REGISTERED = "dataset.registered"
    DATASET_SUSPENDED = "dataset.suspended"
    DATASET_RETIRED = "dataset.retired"
    DATASET_SCRUBBED = "dataset.scrubbed"
    IMAGE_BUILT = "image.built"
    IMAGE_BUILD_FAILED = "image.build_failed"
    IMAGE_RETIRED = "image.retired"
    IMAGE_PINNED = "image.pinned"
    EGRESS_REQUEST_CREATED = "egress.request.created"
    EGRESS_FILE_ADDED = "egress.file.added"
    EGRESS_FILE_REPLACED = "egress.file.replaced"
    EGRESS_GROUP_CHANGED = "egress.group.changed"
    EGRESS_COMMENTED = "egress.commented"
    EGRESS_SUBMITTED = "egress.submitted"
    EGRESS_REVIEWED = "egress.reviewed"
    EGRESS_RETURNED = "egress.returned"
    EGRESS_REJECTED = "egress.rejected"
    EGRESS_APPROVED = "egress.approved"
    EGRESS_RELEASED = "egress.released"
    EGRESS_WITHDRAWN = "egress.withdrawn"
    EGRESS_DOWNLOADED = "egress.downloaded"
    EGRESS_FILE_READ = "egress.file.read"
    # a file's content shown in a workspace's browser, or refused (hub/file_reads.py)
    WORKSPACE_FILE_READ = "workspace.file.read"
    WORKSPACE_FILE_REFUSED = "workspace.file.refused"
    WORKSPACE_READS_BLOCKED = "workspace.reads.blocked"  # the day's volume reached: stewards alerted
    # issue 19, items 4, 5, 7 (datasets/identity.py, accreditation.py, retention.py)
    IDENTITY_BOUND = "identity.bound"
    IDENTITY_UNBOUND = "identity.unbound"
    ACCREDITATION_RECORDED = "accreditation.recorded"
    PROJECT_ARCHIVED = "project.archived"
    PROJECT_WIPED = "project.wiped"
    PROJECT_RESTORED = "project.restored"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    PACKAGE_POLICY_SET = "package.policy.set"
    PACKAGE_REQUESTED = "package.requested"
    PACKAGE_REFUSED = "package.refused"
    PACKAGE_APPROVED = "package.approved"
    PACKAGE_PUBLISHED = "package.published"
    PACKAGE_PUBLISH_FAILED = "package.publish_failed"
    PACKAGE_REMOVED = "package.removed"
    # per-project extracts and the opt-out register (extracts/)
    EXTRACT_QUEUED = "extract.queued"
    EXTRACT_BUILT = "extract.built"
    EXTRACT_FAILED = "extract.failed"
    OPTOUT_ADDED = "optout.added"


def _digest(previous: str, seq: int, at: str, actor: str, action: str, project: str | None,
            details: dict[str, Any]) -> str:
    body = json.dumps([seq, at, actor, action, project, details], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(f"{previous}\n{body}".encode()).hexdigest()


ACTOR_LENGTH = 64  # the column's width; a longer name (a failed login's, say) is cut, kept in full below


def record(session: Session, actor: str, action: AuditAction, *, project: str | None = None,
           details: dict[str, Any] | None = None) -> AuditEvent:
    """Append one event in the caller's transaction: it is on the record if and only if the act is."""
    details = {**process.context(), **(details or {})}
    if len(actor) > ACTOR_LENGTH:
        details["actor_in_full"] = actor
        actor = actor[:ACTOR_LENGTH]
    head = session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one()  # the head row is created by the migration that created the log
    seq, previous = head
    at = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    details = json.loads(json.dumps(details, default=str))  # what is stored is what is hashed
    digest = _digest(previous, seq, at, actor, action.value, project, details)
    event = AuditEvent(seq=seq, at=at, actor=actor, action=action.value, project=project,
                       details=details, previous_hash=previous, hash=digest)
    session.add(event)
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=digest))
    return event


@dataclass(frozen=True)
class Verification:
    ok: bool
    rows: int
    first_bad_seq: int | None = None
    problem: str | None = None


def events(session: Session) -> Iterator[AuditEvent]:
    yield from session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000)


def verify(session: Session) -> Verification:
    previous, expected_seq, rows = GENESIS, 1, 0
    for event in events(session):
        rows += 1
        if event.seq != expected_seq:
            return Verification(False, rows, expected_seq, f"row {expected_seq} is missing (next is {event.seq})")
        if event.previous_hash != previous:
            return Verification(False, rows, event.seq, "does not follow the row before it (inserted or reordered)")
        if _digest(previous, event.seq, event.at, event.actor, event.action, event.project,
                   event.details) != event.hash:
            return Verification(False, rows, event.seq, "its content was changed after it was written")
        previous, expected_seq = event.hash, expected_seq + 1
    head = session.get(AuditHead, 1)
    if head.seq > rows:
        return Verification(False, rows, rows + 1, f"rows {rows + 1} to {head.seq} were deleted from the end")
    if head.seq < rows or head.hash != previous:
        return Verification(False, rows, head.seq + 1, "was added behind the log's back")
    return Verification(True, rows)


def checkpoint_after_release(database_url: str, secrets_dir: Path) -> None:
    """Anchor the log after a release (``datasets.anchor``): one call for the egress service."""
    from datasets.anchor import after_release

    after_release(database_url, secrets_dir)


def as_json_line(event: AuditEvent) -> str:
    return json.dumps({"seq": event.seq, "at": event.at, "actor": event.actor, "action": event.action,
                       "project": event.project, "details": event.details,
                       "previous_hash": event.previous_hash, "hash": event.hash}, ensure_ascii=False)
