"""The egress review's SQL: every query it makes, as functions of an open session.

Nothing here decides anything: ``policies`` and ``permissions`` decide, ``logic`` writes. Who may
act for which project, who is tied to one and who is an accredited checker are not asked here but
of the catalogue's access module (``datasets.access``), the one place that answers them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from datasets.models import Dataset, Extract, ExtractStatus, Membership, Person, Project
from egress_review.models import Decision, ExportRequest, FileKind, RequestFile, RequestState, Review


def person(session: Session, username: str) -> Person | None:
    return session.get(Person, username)


def project(session: Session, slug: str) -> Project | None:
    return session.get(Project, slug)


def memberships(session: Session, username: str) -> set[str]:
    """The projects the person is a member of, whatever their status (is a comment a researcher's?)."""
    return set(session.scalars(select(Membership.project_slug).where(Membership.username == username)))


def request(session: Session, request_id: int) -> ExportRequest | None:
    return session.get(ExportRequest, request_id)


def locked(session: Session, request_id: int) -> ExportRequest | None:
    """The request, its row locked until the transaction ends and read afresh (not from the
    session's cache): another replica's act on it waits, then reads what this one committed."""
    return session.execute(select(ExportRequest).where(ExportRequest.id == request_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def requests_for(session: Session, *, everything: bool, projects: Collection[str],
                 submitted_outside: Collection[str] | None, author_not: str) -> list[ExportRequest]:
    """Newest first: every request when ``everything``; else those of ``projects`` and, when
    ``submitted_outside`` is given, the submitted ones (no draft) of any project not in it and not
    written by ``author_not``. It narrows what is read (a page must not read the whole history of
    every project's requests); whether each may be seen is ``permissions.may_view``'s to say."""
    query = select(ExportRequest).order_by(ExportRequest.id.desc())
    if not everything:
        seen = ExportRequest.project_slug.in_(sorted(projects))
        if submitted_outside is not None:
            seen = or_(seen, and_(ExportRequest.state != RequestState.DRAFT, ExportRequest.author != author_not,
                                  ExportRequest.project_slug.not_in(sorted(submitted_outside))))
        query = query.where(seen)
    return list(session.scalars(query))


def move(session: Session, request: ExportRequest, to: RequestState, **values: Any) -> bool:
    """The conditional UPDATE: the state changes only if it is still the one read; ``False`` if not."""
    done = session.execute(
        update(ExportRequest).where(ExportRequest.id == request.id, ExportRequest.state == request.state)
        .values(state=to, **values).execution_options(synchronize_session=False)).rowcount
    session.refresh(request)
    return done == 1


def output_files(session: Session, request_id: int) -> list[RequestFile]:
    return list(session.scalars(select(RequestFile).where(RequestFile.request_id == request_id,
                                                           RequestFile.kind == FileKind.OUTPUT)))


def delete_reviews(session: Session, file_ids: list[int], *, keep_approvals: bool = False) -> None:
    query = delete(Review).where(Review.file_id.in_(file_ids))
    if keep_approvals:
        query = query.where(Review.decision != Decision.APPROVE)
    session.execute(query)


def released_outputs(session: Session, project_slug: str) -> list[tuple[int, str, str]]:
    """(request, path, sha256) of every output file the project released, oldest first."""
    return list(session.execute(
        select(ExportRequest.id, RequestFile.path, RequestFile.sha256).join(RequestFile.request)
        .where(ExportRequest.project_slug == project_slug, ExportRequest.state == RequestState.RELEASED,
               RequestFile.kind == FileKind.OUTPUT, RequestFile.sha256.is_not(None))
        .order_by(ExportRequest.id)).all())


def approved_ids(session: Session) -> list[int]:
    return list(session.scalars(select(ExportRequest.id).where(ExportRequest.state == RequestState.APPROVED)))


def referenced_digests(session: Session) -> set[str]:
    frozen = session.execute(select(RequestFile.sha256, RequestFile.checked_sha256)).all()
    return {h for pair in frozen for h in pair if h}


def checker_emails(session: Session, request: ExportRequest, today: dt.date) -> list[str]:
    """The addresses of the accredited checkers independent of the request's project."""
    tied = set(members(session, request.project_slug))
    people = session.scalars(select(Person).where(Person.checker_accredited_until >= today)).all()
    return [p.email for p in people if p.email and p.username not in tied and p.username != request.author]


def ready_extracts(session: Session, project_slug: str) -> list[tuple[str, str]]:
    """(path under the extracts root, root hash) of the project's newest ready extract of each
    dataset version: the data its workspaces hold, keyed by the project's pseudonyms."""
    newest: dict[str, tuple[str, str]] = {}
    for extract in session.scalars(select(Extract).where(
            Extract.project_id == project_slug, Extract.status == ExtractStatus.READY,
            Extract.path.is_not(None), Extract.root_hash.is_not(None)).order_by(Extract.id.desc())):
        newest.setdefault(extract.dataset_version_id, (extract.path, extract.root_hash))
    return [newest[key] for key in sorted(newest)]


def dataset_columns(session: Session, slug: str) -> list[Any]:
    dataset = session.get(Dataset, slug)
    return list(dataset.columns or []) if dataset else []


def members(session: Session, project_slug: str) -> list[str]:
    return sorted(session.scalars(select(Membership.username).where(Membership.project_slug == project_slug)))
