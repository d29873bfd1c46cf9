"""What one person sees of a request: blind reviews and private comments left out (``policies``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from egress_review import data_access as db
from egress_review import checks, permissions, policies
from egress_review.errors import StateConflict
from egress_review.models import Decision, ExportRequest, FileKind, RequestState as S
from egress_review.permissions import Actor, RequestFacts
from egress_review.release import review_entry


@dataclass
class FileView:
    id: int
    path: str
    name: str
    group: str
    kind: str
    sha256: str | None
    size: int | None
    checks: list[dict[str, Any]]
    reviews: list[dict[str, Any]]  # only those this viewer may see
    my_decision: str | None = None
    checked_sha256: str | None = None  # the copy the checks ran on (added, replaced or frozen)


@dataclass
class RequestView:
    """A request as one person may see it: blind reviews and private comments left out."""

    id: int
    project: str
    author: str
    title: str
    state: str
    created_at: str
    submitted_at: str | None
    decided_by: str | None
    reviews_required: int
    complete_reviews: int
    groups: list[dict[str, str]]
    files: list[FileView]
    comments: list[dict[str, Any]]
    released: list[str] = field(default_factory=list)
    may_edit: bool = False
    may_review: bool = False
    may_download: bool = False
    reviewed_by_me: bool = False
    # for a checker: release is offered only when the rule holds; otherwise why not (a Msg)
    may_release: bool = False
    release_refusal: Any = None

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "files"}
        data["files"] = [vars(f) for f in self.files]
        data["release_refusal"] = str(self.release_refusal) if self.release_refusal else None
        return data


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def facts(request: ExportRequest) -> RequestFacts:
    return RequestFacts(request.project_slug, request.author, request.state == S.DRAFT)


def required(session: Session, request: ExportRequest) -> int:
    return policies.reviews_required(db.project(session, request.project_slug).egress_reviews_required)


def complete_reviewers(request: ExportRequest) -> set[str]:
    """Checkers who decided on every output file."""
    outputs = [f for f in request.files if f.kind == FileKind.OUTPUT]
    if not outputs:
        return set()
    return set.intersection(*[{r.reviewer for r in f.reviews} for f in outputs])


def output_facts(request: ExportRequest) -> list[policies.OutputFacts]:
    """Each output file as the release rule sees it: approvals, Fail, written overrides."""
    def approvals(f: Any, overridden: bool = False) -> int:
        return sum(r.decision == Decision.APPROVE and (bool(r.override_reason) or not overridden) for r in f.reviews)
    return [policies.OutputFacts(f.name, approvals(f), checks.outcome(f.checks or []) == checks.FAIL,
                                 approvals(f, True))
            for f in request.files if f.kind == FileKind.OUTPUT]


def _release_refusal(request: ExportRequest, required_: int) -> Any:
    try:
        policies.check_release(request.id, request.state, request.decided_by, output_facts(request), required_)
    except StateConflict as refused:
        return refused.args[0]
    return None


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.replace(tzinfo=None) if moment and moment.tzinfo else moment  # all stored in UTC


def view_of(session: Session, actor: Actor, request: ExportRequest, today: dt.date) -> RequestView:
    facts_, state = facts(request), request.state
    is_checker = permissions.refusal_to_review(actor, facts_, today) is None
    complete = complete_reviewers(request)
    sees_private = permissions.sees_checker_comments(actor, facts_, today)
    files = []
    for f in request.files:
        reviews = [review_entry(r) for r in f.reviews
                   if policies.review_visible(state, r.reviewer, actor.username, is_checker or actor.is_admin)]
        mine = next((r.decision.value for r in f.reviews if r.reviewer == actor.username), None)
        files.append(FileView(f.id, f.path, f.name, f.group_name, f.kind.value, f.sha256, f.size,
                              list(f.checks or []), reviews, mine, f.checked_sha256))
    comments, submitted = [], _naive(request.submitted_at)
    for c in request.comments:
        by_researcher = c.author == request.author or request.project_slug in db.memberships(session, c.author)
        if policies.comment_visible(state, own_or_researchers=c.author == actor.username or by_researcher,
                                    viewer_sees_private=sees_private, visible_to_researcher=c.visible_to_researcher,
                                    earlier_round=submitted is not None and _naive(c.at) < submitted):
            comments.append({"author": c.author, "text": c.text, "file_id": c.file_id, "at": iso(c.at),
                             "visible_to_researcher": c.visible_to_researcher})
    released = [f.name for f in request.files if f.kind == FileKind.OUTPUT] if state == S.RELEASED else []
    required_ = required(session, request)
    refusal = _release_refusal(request, required_) if is_checker and state == S.REVIEWED else None
    return RequestView(
        id=request.id, project=request.project_slug, author=request.author, title=request.title,
        state=state.value, created_at=iso(request.created_at), submitted_at=iso(request.submitted_at),
        decided_by=request.decided_by, reviews_required=required_, complete_reviews=len(complete),
        groups=[{"name": g.name, "context": g.context, "controls": g.controls} for g in request.groups],
        files=files, comments=comments, released=released,
        may_edit=permissions.refusal_to_edit(actor, facts_) is None and state in policies.EDITABLE,
        may_review=is_checker, may_download=permissions.refusal_to_download(actor, facts_) is None,
        reviewed_by_me=actor.username in complete,
        may_release=is_checker and state == S.REVIEWED and refusal is None, release_refusal=refusal)
