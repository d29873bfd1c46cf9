"""The package index's acts: set a policy, ask, refuse, approve (fetch, check, publish), remove.

Every act is one audit row in the same transaction as its change. Approval runs in three steps so
that nothing is ever half-published: resolve and download into a temporary folder (no database
change), publish all files or none (``IndexStore.publish``), then record the distributions and the
request's new state in one transaction; if that transaction fails, the files just published are
removed again. A fetch that fails leaves the request ``failed`` with the reason, which the
researcher reads on their page and with ``tre packages status``.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager

from packaging.requirements import InvalidRequirement, Requirement
from sqlalchemy import select
from sqlalchemy.orm import Session

from datasets.audit import AuditAction, record
from datasets.models import Membership, Project
from datasets.workflow import WorkflowError, require_admin
from package_index import fetch
from package_index.models import INSTALLATION, Distribution, PackagePolicy, PackageRequest, Policy, RequestState, Source
from package_index.policy import ALLOWLIST_ROOT, APPROVED_ROOT, BadRequest, effective, may_request, reason_text, requirement
from package_index.store import IndexStore

Sessions = Callable[[], AbstractContextManager[Session]]
# What researchers of this field use beyond the image, with pip itself (Data Safe Haven's allowlist
# once forgot pip, and researchers could not upgrade it to read newer wheels).
DEFAULT_ALLOWLIST = ("pip", "setuptools", "wheel", "lifelines", "scikit-survival", "pyreadstat", "tableone")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def policy_of(session: Session, project: str) -> Policy:
    installation = session.get(PackagePolicy, INSTALLATION)
    own = session.get(PackagePolicy, project)
    return effective(installation.policy if installation else None, own.policy if own else None)


def set_policy(session: Session, admin: str, scope: str, policy: Policy) -> None:
    require_admin(session, admin)
    if scope != INSTALLATION and session.get(Project, scope) is None:
        raise WorkflowError(f"There is no project {scope}; `tre catalogue projects` lists them.")
    row = session.get(PackagePolicy, scope) or PackagePolicy(scope=scope)
    row.policy, row.set_by, row.set_at = policy, admin, _now()
    session.add(row)
    record(session, admin, AuditAction.PACKAGE_POLICY_SET, project=None if scope == INSTALLATION else scope,
           details={"scope": scope, "policy": policy.value})


def served(session: Session, name: str | None = None) -> list[Distribution]:
    query = select(Distribution).where(Distribution.removed_at.is_(None)).order_by(Distribution.name, Distribution.version)
    if name:
        query = query.where(Distribution.name == name)
    return list(session.scalars(query))


def ask(session: Session, username: str, project: str, name: str, version: str, reason: str) -> PackageRequest:
    """A researcher's request; refused at once (with what to do) when it could never be granted."""
    wanted = requirement(name, version)
    why = reason_text(reason)
    if session.get(Membership, (project, username)) is None:
        raise BadRequest(f"You are not a member of project {project}; only its members ask for its packages.")
    policy = policy_of(session, project)
    if not may_request(policy):
        raise BadRequest(f"Project {project}'s package policy is '{policy.value}': it takes no requests. Ask a "
                         "platform admin to set it to 'any-approved-on-request'.")
    pending = session.scalars(select(PackageRequest).where(
        PackageRequest.project == project, PackageRequest.name == wanted.name,
        PackageRequest.specifier == wanted.specifier, PackageRequest.state == RequestState.PENDING)).first()
    if pending:
        raise BadRequest(f"Request #{pending.id} for {wanted} is already waiting for an admin.")
    request = PackageRequest(project=project, requested_by=username, name=wanted.name, specifier=wanted.specifier,
                             reason=why, state=RequestState.PENDING, created_at=_now(), closure=[])
    session.add(request)
    session.flush()
    record(session, username, AuditAction.PACKAGE_REQUESTED, project=project,
           details={"request": request.id, "requirement": str(wanted), "reason": why})
    return request


def requests_of(session: Session, project: str | None = None) -> list[PackageRequest]:
    query = select(PackageRequest).order_by(PackageRequest.id.desc())
    if project is not None:
        query = query.where(PackageRequest.project == project)
    return list(session.scalars(query))


def _pending(session: Session, request_id: int, *states: RequestState) -> PackageRequest:
    request = session.get(PackageRequest, request_id)
    if request is None:
        raise WorkflowError(f"There is no package request #{request_id}; `tre packages requests` lists them.")
    if request.state not in (states or (RequestState.PENDING,)):
        raise WorkflowError(f"Request #{request_id} is {request.state.value}; only a pending one can be decided.")
    return request


def review(sessions: Sessions, admin: str, request_id: int, upstream: str, ca_bundle: str | None) -> list[dict]:
    """What approving would bring (closure, licences, wheels), stored on the request for the pages."""
    with sessions() as session:
        require_admin(session, admin)
        request = _pending(session, request_id)
        wanted = f"{request.name}{request.specifier}"
    items = fetch.resolve([wanted], upstream, ca_bundle)  # raises FetchError with the reason
    closure = [i.as_dict() for i in items]
    with sessions() as session:
        _pending(session, request_id).closure = closure
    return closure


def refuse(session: Session, admin: str, request_id: int, reason: str) -> PackageRequest:
    require_admin(session, admin)
    request = _pending(session, request_id, RequestState.PENDING, RequestState.FAILED)
    if not reason.strip():
        raise WorkflowError("Say why the request is refused; the researcher reads it.")
    request.state, request.decided_by, request.decided_at = RequestState.REFUSED, admin, _now()
    request.decision_reason = reason.strip()
    request.outcome = f"Refused by {admin}: {reason.strip()}"
    record(session, admin, AuditAction.PACKAGE_REFUSED, project=request.project,
           details={"request": request.id, "reason": reason.strip()})
    return request


def _publish(sessions: Sessions, store: IndexStore, actor: str, items: list[fetch.Item], upstream: str,
             ca_bundle: str | None, into: str, source: Source, request_id: int | None) -> list[Distribution]:
    """Download, check and publish ``items`` not served yet, and record them: all or nothing."""
    with sessions() as session:
        already = {d.filename for d in served(session)}
    todo = [i for i in items if i.filename not in already]
    if not todo:
        return []
    fetched = fetch.download(todo, upstream, ca_bundle)
    published = []
    try:
        published = store.publish(fetched.artifacts, into)
        with sessions() as session:
            rows = [Distribution(filename=i.filename, name=i.name, version=i.version, sha256=i.sha256, size=i.size,
                                 source=source, request_id=request_id, published_by=actor, published_at=_now())
                    for i in fetched.items]
            for row in rows:
                session.merge(row)
        return rows
    except BaseException:
        for path in published:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(fetched.folder, ignore_errors=True)


def approve(sessions: Sessions, store: IndexStore, admin: str, request_id: int, upstream: str,
            ca_bundle: str | None, reason: str = "") -> PackageRequest:
    with sessions() as session:
        require_admin(session, admin)
        request = _pending(session, request_id, RequestState.PENDING, RequestState.FAILED)
        wanted, project = f"{request.name}{request.specifier}", request.project
        record(session, admin, AuditAction.PACKAGE_APPROVED, project=project,
               details={"request": request_id, "requirement": wanted, "reason": reason})
    try:
        items = fetch.resolve([wanted], upstream, ca_bundle)
        rows = _publish(sessions, store, admin, items, upstream, ca_bundle, APPROVED_ROOT, Source.REQUEST, request_id)
    except (fetch.FetchError, ValueError, OSError) as error:
        outcome = f"Approved, but it could not be brought in; nothing was published. {error}"
        with sessions() as session:
            request = session.get(PackageRequest, request_id)
            request.state, request.decided_by, request.decided_at = RequestState.FAILED, admin, _now()
            request.outcome = outcome
            record(session, admin, AuditAction.PACKAGE_PUBLISH_FAILED, project=project,
                   details={"request": request_id, "error": str(error)})
        raise WorkflowError(outcome) from error
    with sessions() as session:
        request = session.get(PackageRequest, request_id)
        request.state, request.decided_by, request.decided_at = RequestState.PUBLISHED, admin, _now()
        request.decision_reason = reason or None
        request.closure = [i.as_dict() for i in items]
        request.outcome = (f"Approved by {admin}: `pip install '{wanted}'` now works in project {project}'s "
                           "workspaces.")
        record(session, admin, AuditAction.PACKAGE_PUBLISHED, project=project,
               details={"request": request_id, "files": {r.filename: r.sha256 for r in rows}})
        session.flush()
        session.expunge(request)
    return request


def publish_allowlist(sessions: Sessions, store: IndexStore, admin: str, names: list[str], upstream: str,
                      ca_bundle: str | None) -> list[Distribution]:
    """Resolve the allowlist (names, or requirements such as ``lifelines==0.30.0``) as one closure, so
    that its members agree on their dependencies, and publish it."""
    with sessions() as session:
        require_admin(session, admin)
    try:
        wanted = [Requirement(n) for n in names]
    except InvalidRequirement as error:
        raise BadRequest(f"Not a requirement pip can read: {error}") from None
    items = fetch.resolve([str(requirement(w.name, str(w.specifier))) for w in wanted], upstream, ca_bundle)
    rows = _publish(sessions, store, admin, items, upstream, ca_bundle, ALLOWLIST_ROOT, Source.ALLOWLIST, None)
    with sessions() as session:
        record(session, admin, AuditAction.PACKAGE_PUBLISHED, details={
            "allowlist": list(names), "files": {r.filename: r.sha256 for r in rows}})
    return rows


def remove(session: Session, store: IndexStore, admin: str, name: str, reason: str) -> list[str]:
    """Stop new installs of ``name`` (every version); installed copies stay where they are."""
    require_admin(session, admin)
    wanted = requirement(name)
    gone = served(session, wanted.name)
    if not gone:
        raise WorkflowError(f"The index serves no {wanted.name}; `tre packages list` shows what it serves.")
    for distribution in gone:
        store.remove(distribution.filename)
        distribution.removed_at = _now()
    for request in session.scalars(select(PackageRequest).where(
            PackageRequest.name == wanted.name, PackageRequest.state == RequestState.PUBLISHED)):
        request.state = RequestState.REMOVED
        request.outcome = f"Removed from the index by {admin}: {reason}"
    record(session, admin, AuditAction.PACKAGE_REMOVED, details={
        "name": wanted.name, "files": [d.filename for d in gone], "reason": reason})
    return [d.filename for d in gone]
