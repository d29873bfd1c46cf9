"""The queue of extracts: which extract each grant needs, and which are to be built.

A grant in force needs a *ready* extract of its dataset version for its current spec (the spec's
digest names it). Queueing is idempotent: an extract queued, building or ready for the same spec
is the one returned. A ready extract older than the opt-out register (its ``optout_generation``
below the newest opt-out) is built again, once the register has been quiet for
``TRE_OPTOUT_BATCH_SECONDS``, so that objections arriving together cost one rebuild.

Every function runs in the caller's transaction; building is ``extracts.build.run``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.grant_spec import GrantSpec, whole_dataset
from datasets.models import DatasetVersion, Extract, ExtractStatus, Grant, OptOut, VersionStatus, version_key
from tre_core.settings import TRESettings

ACTOR = "extracts"
LIVE = (ExtractStatus.QUEUED, ExtractStatus.BUILDING, ExtractStatus.READY)


def spec_of(session: Session, grant: Grant) -> GrantSpec:
    """The grant's spec; a grant without one gives the whole dataset version."""
    if grant.spec is not None:
        return GrantSpec.from_json(grant.spec)
    version = session.get(DatasetVersion, (grant.dataset_slug, grant.dataset_version))
    return whole_dataset(version.tables if version is not None else {})


def optout_generation(session: Session) -> int:
    """The newest opt-out's id: an extract built at a lower generation may hold someone who objected."""
    return session.scalar(select(func.max(OptOut.id))) or 0


def _new(session: Session, grant: Grant, digest: str) -> Extract:
    """A queued extract; extracts of the grant still queued for an older spec will never be wanted."""
    for stale in session.scalars(select(Extract).where(Extract.grant_id == grant.id, Extract.spec_digest != digest,
                                                       Extract.status == ExtractStatus.QUEUED)):
        stale.status, stale.error = ExtractStatus.SUPERSEDED, "the grant's spec changed before it was built"
    extract = Extract(project_id=grant.project_slug, dataset_version_id=version_key(grant.dataset_slug,
                      grant.dataset_version), grant_id=grant.id, spec_digest=digest, status=ExtractStatus.QUEUED,
                      progress=0, created_at=dt.datetime.now(dt.UTC), optout_generation=0)
    session.add(extract)
    session.flush()
    audit.record(session, ACTOR, AuditAction.EXTRACT_QUEUED, project=grant.project_slug, details={
        "extract": extract.id, "grant": grant.id, "dataset": grant.dataset_slug, "version": grant.dataset_version,
        "spec_digest": digest})
    return extract


def enqueue_for_grant(session: Session, grant: Grant) -> Extract:
    """The extract serving the grant's current spec: the live one if there is one, else a new queued one."""
    digest = spec_of(session, grant).digest()
    existing = session.scalars(select(Extract).where(
        Extract.project_id == grant.project_slug,
        Extract.dataset_version_id == version_key(grant.dataset_slug, grant.dataset_version),
        Extract.spec_digest == digest, Extract.status.in_(LIVE)).order_by(Extract.id.desc())).first()
    return existing or _new(session, grant, digest)


def _grants_in_force(session: Session, today: dt.date) -> list[Grant]:
    grants = session.scalars(select(Grant).where(Grant.starts_on <= today, Grant.ends_on >= today)
                             .order_by(Grant.id)).all()
    active = {(v.dataset_slug, v.version) for v in session.scalars(
        select(DatasetVersion).where(DatasetVersion.status == VersionStatus.ACTIVE))}
    return [g for g in grants if (g.dataset_slug, g.dataset_version) in active]


def _newest_failed(session: Session, grant: Grant) -> bool:
    newest = session.scalars(select(Extract.status).where(
        Extract.project_id == grant.project_slug,
        Extract.dataset_version_id == version_key(grant.dataset_slug, grant.dataset_version),
        Extract.spec_digest == spec_of(session, grant).digest()).order_by(Extract.id.desc())).first()
    return newest is ExtractStatus.FAILED


def enqueue_missing(session: Session, today: dt.date | None = None, *, retry_failed: bool = False) -> list[Extract]:
    """Queue an extract for every grant in force that has none queued, building or ready for its spec.

    A grant whose newest build for its spec failed is left alone (its workspaces are refused with the
    failure, which a steward looks into) unless ``retry_failed``: the steward's ``tre extracts build``
    tries again; the hub's extraction service does not retry a failure every few seconds."""
    today = today or dt.date.today()
    queued = []
    for grant in _grants_in_force(session, today):
        if not retry_failed and _newest_failed(session, grant):
            continue
        before = session.scalar(select(func.max(Extract.id))) or 0
        extract = enqueue_for_grant(session, grant)
        if extract.id > before:
            queued.append(extract)
    return queued


def rebuild_for_optouts(session: Session, now: dt.datetime | None = None, *,
                        retry_failed: bool = False) -> list[Extract]:
    """Queue a new build of every ready extract older than the opt-out register, once no opt-out has
    been recorded for ``TRE_OPTOUT_BATCH_SECONDS``; the ready one serves until its successor is ready."""
    now = now or dt.datetime.now(dt.UTC)
    generation = optout_generation(session)
    if not generation:
        return []
    last = session.scalar(select(func.max(OptOut.recorded_at)))
    if last.tzinfo is None:  # SQLite gives back naive UTC
        last = last.replace(tzinfo=dt.UTC)
    if (now - last).total_seconds() < TRESettings().optout_batch_seconds:
        return []
    queued = []
    stale = session.scalars(select(Extract).where(Extract.status == ExtractStatus.READY,
                                                  Extract.optout_generation < generation).order_by(Extract.id)).all()
    for extract in stale:
        newer = session.scalar(select(Extract.id).where(
            Extract.project_id == extract.project_id, Extract.dataset_version_id == extract.dataset_version_id,
            Extract.spec_digest == extract.spec_digest, Extract.id > extract.id,
            Extract.status.in_((ExtractStatus.QUEUED, ExtractStatus.BUILDING))).limit(1))
        grant = session.get(Grant, extract.grant_id) if extract.grant_id else None
        # a rebuild that failed is the steward's to retry (``tre extracts build``), not every pass's
        failed = grant is not None and not retry_failed and _newest_failed(session, grant)
        if newer is None and grant is not None and not failed and grant.in_force(now.date()):
            queued.append(_new(session, grant, extract.spec_digest))
    return queued


def pending(session: Session) -> list[Extract]:
    """Extracts to build, oldest first: queued ones, and builds whose builder stopped sending heartbeats."""
    stale_before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=TRESettings().extract_stale_seconds)
    rows = session.scalars(select(Extract).where(Extract.status.in_((ExtractStatus.QUEUED, ExtractStatus.BUILDING)))
                           .order_by(Extract.id)).all()
    return [e for e in rows if e.status is ExtractStatus.QUEUED or _aware(e.heartbeat_at) < stale_before]


def _aware(moment: dt.datetime | None) -> dt.datetime:
    if moment is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def latest(session: Session, project_id: str, dataset_version_id: str) -> Extract | None:
    """The newest extract of this project's dataset version, whatever its state (for progress)."""
    return session.scalars(select(Extract).where(Extract.project_id == project_id,
                                                 Extract.dataset_version_id == dataset_version_id)
                           .order_by(Extract.id.desc())).first()


def ready_extract(session: Session, project_id: str, dataset_version_id: str, spec_digest: str) -> Extract | None:
    """The extract a workspace may mount for this grant spec: ready, the newest."""
    return session.scalars(select(Extract).where(
        Extract.project_id == project_id, Extract.dataset_version_id == dataset_version_id,
        Extract.spec_digest == spec_digest, Extract.status == ExtractStatus.READY)
        .order_by(Extract.id.desc())).first()


def for_project(session: Session, project_id: str) -> list[Extract]:
    return list(session.scalars(select(Extract).where(Extract.project_id == project_id)
                                .order_by(Extract.id.desc())))


def for_grant(session: Session, grant: Grant) -> Extract | None:
    """The ready extract of the grant's current spec, which its project's workspaces mount; None while
    it is being prepared (``latest`` then gives the progress)."""
    return ready_extract(session, grant.project_slug, version_key(grant.dataset_slug, grant.dataset_version),
                         spec_of(session, grant).digest())
