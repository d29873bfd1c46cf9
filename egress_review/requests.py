"""The one layer that changes export requests: every act of the pages and of the JSON API.

Each act checks who may act (``permissions``) and what the state allows (``workflow``), then
writes its rows and its audit row in one transaction; a state changes only through a conditional
UPDATE on the state that was read, so two checkers releasing at once yield one release.

Several replicas of the service may act on one request at once (README: "More than one host"):
every act that changes a request first locks its row (``SELECT ... FOR UPDATE`` on PostgreSQL), so
acts on one request run one after the other, each reading what the one before committed. Two
reviews sent at once are then both counted, the same review sent twice is refused as a repeat, and
the copy out happens under the lock, so a replica finishing interrupted releases at start never
writes a release another replica is writing; whoever moves the request to released tells the
author, once.

Work on files happens outside transactions and before the commit that names them: submitting
freezes every file into the store first, then records the digests and the new state in one
commit, so a crash leaves the request as it was or fully submitted. Emails go out after the commit, never inside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datasets import audit
from datasets.audit import AuditAction
from datasets.db import session_scope
from datasets.models import AuditEvent, Grant, Membership, Person, Project, STARTABLE_STATUSES
from egress_review import checks, permissions, release
from egress_review.checks import strip
from egress_review.checks import tables as check_tables
from egress_review.checks.i18n import Msg
from egress_review.checks.identifiers import IdentifierIndex, identifying_columns
from egress_review.checks.params import Params
from egress_review.models import (Comment, Decision, ExportRequest, FileGroup, FileKind, Release, RequestFile,
                                  RequestState, Review)
from egress_review.permissions import Actor, RequestFacts
from egress_review.text import Message
from egress_review.store import (SWEEP_GRACE, Entry, PathRefused, Store, check_workspace_file, list_folder,
                                  partial_beside)
from egress_review.workflow import AWAITING_CHECKERS, EDITABLE, StateConflict, Step, require_transition, \
    state_after_reviews

RESERVED_NAMES = frozenset({release.RECORD, release.SIGNATURE})  # the release folder's own record

log = logging.getLogger("tre.egress")
M = Message.of
T = TypeVar("T")
S = RequestState
MIN_REVIEWS = 2
GROUP_NAME_MAX = 100


class NotFound(LookupError):
    """Nothing by that name that this person may see (HTTP 404)."""


class Forbidden(PermissionError):
    """This person may not do this (HTTP 403); the message says why."""


class BadInput(ValueError):
    """The input is wrong (HTTP 400); the message says what to change."""


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_request_bytes: int


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

    def as_json(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "files"}
        data["files"] = [vars(f) for f in self.files]
        return data


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


class Airlock:
    """The export requests of one TRE: its database, workspaces, store, release key and clock."""

    def __init__(self, database_url: str, *, workspaces_root: Path, store: Store, secrets_dir: Path,
                 limits: Limits, notify: Callable[[list[str], str, str], None] | None = None,
                 today: Callable[[], dt.date] = dt.date.today, data_root: Path | None = None,
                 checks_cache: Path | None = None) -> None:
        self.url = database_url
        # Where the granted datasets are (for the identifier index) and where their indexes are cached.
        self.data_root = data_root
        self.checks_cache = checks_cache
        self.workspaces_root = workspaces_root
        self.store = store
        self.secrets_dir = secrets_dir
        self.limits = limits
        self.notify = notify
        self.today = today

    # --- plumbing -----------------------------------------------------------------------------

    def _tx(self, act: Callable[..., T], *args: Any) -> T:
        with session_scope(self.url) as session:
            return act(session, *args)

    def workspace(self, project: str) -> Path:
        return self.workspaces_root / project / "shared"

    def actor(self, session: Session, username: str) -> Actor:
        person = session.get(Person, username)
        if person is None:
            raise Forbidden(M("{username} is not in the TRE's catalogue; ask an admin to add you.", username=username))
        projects = session.scalars(
            select(Membership.project_slug).join(Project)
            .where(Membership.username == username, Project.status.in_(STARTABLE_STATUSES))).all()
        ties = set(session.scalars(select(Membership.project_slug).where(Membership.username == username)))
        ties |= set(session.scalars(select(Project.slug).where(Project.applicant == username)))
        ties |= {e.project for e in session.scalars(select(AuditEvent).where(AuditEvent.action == AuditAction.MEMBER_ADDED.value))
                 if e.project and (e.details or {}).get("user") == username}
        return Actor(username, frozenset(projects), person.is_admin, person.checker_accredited_until,
                     ties=frozenset(ties))

    def _request(self, session: Session, actor: Actor, request_id: int, *, lock: bool = False) -> ExportRequest:
        request = _locked(session, request_id) if lock else session.get(ExportRequest, request_id)
        if request is None or not permissions.may_view(actor, _facts(request), self.today()):
            raise NotFound(M("There is no export request {id} that you may see; your requests are listed on the "
                             "egress home page.", id=request_id))
        return request

    def _move(self, session: Session, request: ExportRequest, step: Step, to: S, **values: Any) -> None:
        require_transition(request.state, step, to)
        done = session.execute(
            update(ExportRequest).where(ExportRequest.id == request.id, ExportRequest.state == request.state)
            .values(state=to, **values).execution_options(synchronize_session=False)).rowcount
        if done != 1:
            raise StateConflict(M("Request {id} changed while you were acting on it; look at it again.", id=request.id))
        session.refresh(request)

    def _audit(self, session: Session, actor: Actor, action: AuditAction, request: ExportRequest,
               **details: Any) -> None:
        audit.record(session, actor.username, action, project=request.project_slug,
                     details={"request": request.id, **details})

    # --- reading --------------------------------------------------------------------------------

    def list_requests(self, username: str) -> list[RequestView]:
        def read(session: Session) -> list[RequestView]:
            actor = self.actor(session, username)
            found = session.scalars(select(ExportRequest).order_by(ExportRequest.id.desc())).all()
            return [self._view(session, actor, r) for r in found
                    if permissions.may_view(actor, _facts(r), self.today())]
        return self._tx(read)

    def get(self, username: str, request_id: int) -> RequestView:
        def read(session: Session) -> RequestView:
            actor = self.actor(session, username)
            return self._view(session, actor, self._request(session, actor, request_id))
        return self._tx(read)

    def queue(self, username: str) -> list[RequestView]:
        """Requests waiting for this checker: to review, or reviewed and waiting for a decision."""
        return [r for r in self.list_requests(username) if r.may_review and r.state in AWAITING_CHECKERS
                and (not r.reviewed_by_me or r.state == S.REVIEWED)]

    def waiting_count(self, username: str) -> int:
        """What waits for this person: returned requests of theirs, or the checker's queue."""
        mine = [r for r in self.list_requests(username) if r.author == username and r.state == S.RETURNED]
        return len(mine) + len(self.queue(username))

    def my_projects(self, username: str) -> list[str]:
        return sorted(self._tx(lambda s: self.actor(s, username)).projects)

    def browse(self, username: str, project: str, folder: str) -> list[Entry]:
        actor = self._tx(lambda s: self.actor(s, username))
        if refusal := permissions.refusal_to_create(actor, project):
            raise Forbidden(refusal)
        try:
            return list_folder(self.workspace(project), folder)
        except PathRefused as refused:
            raise BadInput(refused.args[0]) from None
        except FileNotFoundError:
            raise BadInput(M("Project {project} has no workspace folder yet; start its workspace once.", project=project)) from None

    def _view(self, session: Session, actor: Actor, request: ExportRequest) -> RequestView:
        facts, today = _facts(request), self.today()
        is_checker = permissions.refusal_to_review(actor, facts, today) is None
        required = _required(session, request)
        complete = _complete_reviewers(request)
        blind = request.state in (S.SUBMITTED, S.PARTIALLY_REVIEWED)
        researcher_sees = request.state in (S.RETURNED, S.APPROVED, S.RELEASED, S.REJECTED)
        sees_private = permissions.sees_checker_comments(actor, facts, today)

        def review_visible(reviewer: str) -> bool:
            if reviewer == actor.username:
                return True
            return (is_checker or actor.is_admin) and not blind or researcher_sees

        files = []
        for f in request.files:
            reviews = [{"reviewer": r.reviewer, "decision": r.decision.value, "at": _iso(r.at)}
                       for r in f.reviews if review_visible(r.reviewer)]
            mine = next((r.decision.value for r in f.reviews if r.reviewer == actor.username), None)
            files.append(FileView(f.id, f.path, f.name, f.group_name, f.kind.value, f.sha256, f.size,
                                  list(f.checks or []), reviews, mine))
        comments = []
        for c in request.comments:
            by_researcher = c.author == request.author or request.project_slug in _member_projects(session, c.author)
            if c.author == actor.username or by_researcher:
                shown = True
            elif sees_private:
                shown = not blind
            else:
                shown = c.visible_to_researcher and researcher_sees
            if shown:
                comments.append({"author": c.author, "text": c.text, "file_id": c.file_id, "at": _iso(c.at),
                                 "visible_to_researcher": c.visible_to_researcher})
        released = []
        if request.state == S.RELEASED:
            released = [f.name for f in request.files if f.kind == FileKind.OUTPUT]
        return RequestView(
            id=request.id, project=request.project_slug, author=request.author, title=request.title,
            state=request.state.value, created_at=_iso(request.created_at), submitted_at=_iso(request.submitted_at),
            decided_by=request.decided_by, reviews_required=required, complete_reviews=len(complete),
            groups=[{"name": g.name, "context": g.context, "controls": g.controls} for g in request.groups],
            files=files, comments=comments, released=released,
            may_edit=permissions.refusal_to_edit(actor, facts) is None and request.state in EDITABLE,
            may_review=is_checker, may_download=permissions.refusal_to_download(actor, facts) is None,
            reviewed_by_me=actor.username in complete)

    # --- the researcher's acts ------------------------------------------------------------------

    def create(self, username: str, project: str, title: str) -> int:
        def act(session: Session) -> int:
            actor = self.actor(session, username)
            if refusal := permissions.refusal_to_create(actor, project):
                raise Forbidden(refusal)
            title_ = title.strip()
            if not title_ or len(title_) > 200:
                raise BadInput(M("Give the request a title of 1 to 200 characters that says what the results are."))
            request = ExportRequest(project_slug=project, author=username, title=title_, state=S.DRAFT,
                                    created_at=_now())
            session.add(request)
            session.flush()
            self._audit(session, actor, AuditAction.EGRESS_REQUEST_CREATED, request, title=title_)
            return request.id
        return self._tx(act)

    def _editable(self, session: Session, username: str, request_id: int) -> tuple[Actor, ExportRequest]:
        actor = self.actor(session, username)
        request = self._request(session, actor, request_id, lock=True)
        if refusal := permissions.refusal_to_edit(actor, _facts(request)):
            raise Forbidden(refusal)
        if request.state not in EDITABLE:
            raise StateConflict(M("Request {id} is {state}; files change only while it is a draft or returned to you.",
                                  id=request.id, state=request.state.value))
        return actor, request

    def add_file(self, username: str, request_id: int, path: str, group: str, kind: str,
                 context: str | None = None, controls: str | None = None) -> int:
        """Add a workspace file to a group (created on first use); its content is read at submission."""
        def act(session: Session) -> int:
            actor, request = self._editable(session, username, request_id)
            kind_ = _kind(kind)
            group_ = _group_name(group)
            relative = path.strip().removeprefix("/project/")
            try:
                size = check_workspace_file(self.workspace(request.project_slug), relative, self.limits.max_file_bytes)
            except PathRefused as refused:
                raise BadInput(refused.args[0]) from None
            except FileNotFoundError:
                raise BadInput(M("Project {project} has no workspace folder yet; start its workspace once.",
                             project=request.project_slug)) from None
            normalised = "/".join(p for p in relative.split("/") if p not in ("", "."))
            if any(f.path == normalised for f in request.files):
                raise BadInput(M("“{path}” is in this request already; replace it instead.", path=normalised))
            name = normalised.rsplit("/", 1)[-1]
            if name in RESERVED_NAMES:
                raise BadInput(M("“{name}” is the name of the release's own record; rename the file in the workspace.",
                                 name=name))
            if kind_ == FileKind.OUTPUT and any(f.name == name and f.kind == FileKind.OUTPUT for f in request.files):
                raise BadInput(M("Another output file is called “{name}”; released files sit side by side, so rename "
                                 "one in the workspace.", name=name))
            existing = next((g for g in request.groups if g.name == group_), None)
            if existing is None:
                existing = FileGroup(name=group_, context="", controls="")
                request.groups.append(existing)
            if context is not None:
                existing.context = context.strip()
            if controls is not None:
                existing.controls = controls.strip()
            record = RequestFile(path=normalised, group_name=group_, kind=kind_, checks=[])
            request.files.append(record)
            session.flush()
            self._audit(session, actor, AuditAction.EGRESS_FILE_ADDED, request, file=record.id, path=normalised,
                        group=group_, kind=kind_.value, size=size)
            return record.id
        return self._tx(act)

    def set_group(self, username: str, request_id: int, group: str, context: str, controls: str) -> None:
        def act(session: Session) -> None:
            actor, request = self._editable(session, username, request_id)
            found = next((g for g in request.groups if g.name == group), None)
            if found is None:
                raise BadInput(M("This request has no group “{group}”; add a file to create it.", group=group))
            found.context, found.controls = context.strip(), controls.strip()
            self._audit(session, actor, AuditAction.EGRESS_GROUP_CHANGED, request, group=group)
        self._tx(act)

    def replace_file(self, username: str, request_id: int, file_id: int) -> None:
        """The file will be read again at (re)submission; its reviews no longer hold."""
        def act(session: Session) -> None:
            actor, request = self._editable(session, username, request_id)
            record = _file(request, file_id)
            try:
                check_workspace_file(self.workspace(request.project_slug), record.path, self.limits.max_file_bytes)
            except PathRefused as refused:
                raise BadInput(refused.args[0]) from None
            dropped = [r.reviewer for r in record.reviews]
            session.execute(delete(Review).where(Review.file_id == record.id))
            record.sha256, record.size, record.checks = None, None, []
            self._audit(session, actor, AuditAction.EGRESS_FILE_REPLACED, request, file=record.id,
                        path=record.path, reviews_reset=dropped)
        self._tx(act)

    def comment(self, username: str, request_id: int, text: str, *, visible_to_researcher: bool = True,
                file_id: int | None = None) -> None:
        """A note on a request: the researcher's answer, or a checker's (private unless made visible)."""
        def act(session: Session) -> None:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id)
            facts = _facts(request)
            checker = permissions.refusal_to_review(actor, facts, self.today()) is None
            if not checker and permissions.refusal_to_edit(actor, facts):
                raise Forbidden(M("Only the request's author and its checkers comment on it."))
            self._add_comment(session, actor, request, text, visible_to_researcher or not checker, file_id)
        self._tx(act)

    def _add_comment(self, session: Session, actor: Actor, request: ExportRequest, text: str, visible: bool,
                     file_id: int | None) -> None:
        text = text.strip()
        if not text:
            raise BadInput(M("The comment is empty; write what the researcher or the checkers should know."))
        if file_id is not None:
            _file(request, file_id)
        request.comments.append(Comment(author=actor.username, text=text, visible_to_researcher=visible,
                                        file_id=file_id, at=_now()))
        session.flush()
        self._audit(session, actor, AuditAction.EGRESS_COMMENTED, request, file=file_id, visible=visible)

    def submit(self, username: str, request_id: int) -> str:
        """Freeze every file not yet frozen, then record digests and state in one commit."""
        request_facts = self._tx(self._plan_submission, username, request_id)
        state, pending, inputs = request_facts
        frozen: dict[int, tuple[str, int, list[dict[str, Any]]]] = {}
        extra, check_context = self._check_context(inputs) if pending else ([], None)
        for file_id, path, context in pending:
            try:
                done = self.store.freeze(self.workspace(context.project), path, self.limits.max_file_bytes)
            except PathRefused as refused:
                raise BadInput(refused.args[0]) from None
            file_context = replace(check_context, filename=context.check.filename, kind=context.check.kind,
                                   group_context=context.check.group_context,
                                   group_controls=context.check.group_controls)
            found = checks.run_checks(self.store.path_of(done.sha256), file_context) + extra
            frozen[file_id] = (done.sha256, done.size, [r.as_dict() for r in found])
        total = self._tx(self._commit_submission, username, request_id, state, frozen)
        self._tell_checkers(request_id, total)
        return total

    def _plan_submission(self, session: Session, username: str, request_id: int):
        actor, request = self._editable(session, username, request_id)
        if not any(f.kind == FileKind.OUTPUT for f in request.files):
            raise BadInput(M("Add at least one output file before submitting the request."))
        used = {f.group_name for f in request.files}
        for group in request.groups:
            if group.name in used and not (group.context and group.controls):
                raise BadInput(M("Group “{group}” needs both its context (what the files are) and its controls "
                                 "(which disclosure control was applied) before the request is submitted.",
                                 group=group.name))
        workspace = self.workspace(request.project_slug)
        total = 0
        pending = []
        for f in request.files:
            if f.sha256 is None:
                try:
                    total += check_workspace_file(workspace, f.path, self.limits.max_file_bytes)
                except PathRefused as refused:
                    raise BadInput(refused.args[0]) from None
                group = next(g for g in request.groups if g.name == f.group_name)
                context = _Pending(request.project_slug, checks.CheckContext(f.name, f.kind.value, group.context,
                                                                             group.controls))
                pending.append((f.id, f.path, context))
            else:
                total += f.size or 0
        if total > self.limits.max_request_bytes:
            raise BadInput(M("The request's files add up to {total} bytes, over the limit of {limit}; split it or "
                             "export smaller summaries.", total=total, limit=self.limits.max_request_bytes))
        return request.state, pending, self._check_inputs(session, request.project_slug)

    # --- automatic checks ---------------------------------------------------------------------

    def check_context_of(self, project: str) -> tuple[list[checks.CheckResult], checks.CheckContext]:
        """The checks' context for a project, as at submission (``tre check --project``)."""
        if self._tx(lambda session: session.get(Project, project)) is None:
            raise NotFound(M("No project {project} in the catalogue.", project=project))
        return self._check_context(self._tx(self._check_inputs, project))

    def _check_inputs(self, session: Session, project_slug: str) -> _CheckInputs:
        """What the rules need from the catalogue, read in the submission's transaction."""
        project = session.get(Project, project_slug)
        grants = session.scalars(select(Grant).where(Grant.project_slug == project_slug)).all()
        datasets = tuple(sorted({(g.dataset_slug, g.dataset_version, g.dataset.storage_path,
                                  tuple(identifying_columns(g.dataset.columns or [])))
                                 for g in grants if g.in_force(self.today())}))
        earlier = session.execute(
            select(ExportRequest.id, RequestFile.path, RequestFile.sha256).join(RequestFile.request)
            .where(ExportRequest.project_slug == project_slug, ExportRequest.state == S.RELEASED,
                   RequestFile.kind == FileKind.OUTPUT, RequestFile.sha256.is_not(None))
            .order_by(ExportRequest.id)).all()
        released = tuple(checks.Released(Msg("request {request}, {path}", request=rid, path=path),
                                         self.store.path_of(sha), Path(path).name)
                         for rid, path, sha in earlier if Path(path).suffix.lower() in check_tables.TABLE_SUFFIXES)
        return _CheckInputs(dict(project.disclosure_rules or {}) if project else {}, datasets, released)

    def _check_context(self, inputs: _CheckInputs) -> tuple[list[checks.CheckResult], checks.CheckContext]:
        """The project's parameters, identifier index and earlier releases; a problem is a review note."""
        notes: list[checks.CheckResult] = []
        try:
            params = Params.from_overrides(inputs.rules)
        except ValueError as wrong:
            params = Params()
            notes.append(checks.result("parameters", checks.REVIEW, Msg(
                "The project's disclosure_rules are wrong ({error}); ACRO's defaults were used. Ask a data steward "
                "to fix them.", error=wrong.args[0] if wrong.args else str(wrong))))
        identifiers = None
        if inputs.datasets and self.data_root is not None:
            try:
                identifiers = IdentifierIndex.merge(self._index_of(*d) for d in inputs.datasets)
            except Exception as error:  # noqa: BLE001 - a missing dataset file must not block the request
                log.exception("Identifier index not built")
                notes.append(checks.result("identifier-leak", checks.REVIEW, Msg(
                    "The identifier index of the project's datasets could not be built ({error}); check identifiers "
                    "by hand.", error=str(error))))
        return notes, checks.CheckContext("", params=params, identifiers=identifiers, released=inputs.released)

    def _index_of(self, slug: str, version: str, storage_path: str, columns: tuple[str, ...]) -> IdentifierIndex:
        """One dataset version's index: built once from its Parquet files, then read from the cache."""
        assert self.data_root is not None
        cache = (self.checks_cache or self.data_root / ".checks") / "identifiers" / f"{slug}@{version}.arrow"
        if cache.exists():
            return IdentifierIndex.load(cache)
        folder = self.data_root / storage_path
        sources = []
        for path in sorted(folder.glob("*.parquet")):
            import pyarrow.parquet as pq

            present = set(pq.read_schema(path).names)
            sources.append((path, [c for c in columns if c in present]))
        index = IdentifierIndex.from_parquet(sources)
        index.save(cache)
        log.info("Identifier index of %s@%s: %d values", slug, version, len(index))
        return index

    def _commit_submission(self, session: Session, username: str, request_id: int, was: S,
                           frozen: dict[int, tuple[str, int, list[dict[str, Any]]]]) -> str:
        actor, request = self._editable(session, username, request_id)
        unfrozen = {f.id for f in request.files if f.sha256 is None}
        if request.state != was or unfrozen != set(frozen):
            raise StateConflict(M("Request {id} changed while it was being submitted; submit it again.", id=request.id))
        for f in request.files:
            if f.id in frozen:
                f.sha256, f.size, f.checks = frozen[f.id]
        if was == S.RETURNED:
            # Approvals still hold for unchanged files; every other decision is taken again.
            session.execute(delete(Review).where(Review.file_id.in_([f.id for f in request.files]),
                                                 Review.decision != Decision.APPROVE))
            session.flush()
            session.expire(request)
            to = state_after_reviews(len(_complete_reviewers(request)), _required(session, request))
            self._move(session, request, Step.RESUBMIT, to, submitted_at=_now())
        else:
            self._move(session, request, Step.SUBMIT, S.SUBMITTED, submitted_at=_now())
        self._audit(session, actor, AuditAction.EGRESS_SUBMITTED, request, state=request.state.value,
                    files=[{"id": f.id, "path": f.path, "kind": f.kind.value, "sha256": f.sha256, "size": f.size,
                            "checks": checks.outcome(f.checks or [])} for f in request.files])
        return request.state.value

    def withdraw(self, username: str, request_id: int) -> None:
        def act(session: Session) -> None:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id, lock=True)
            if refusal := permissions.refusal_to_edit(actor, _facts(request)):
                raise Forbidden(refusal)
            self._move(session, request, Step.WITHDRAW, S.WITHDRAWN)
            self._audit(session, actor, AuditAction.EGRESS_WITHDRAWN, request)
        self._tx(act)

    # --- the checkers' acts ---------------------------------------------------------------------

    def _reviewable(self, session: Session, username: str, request_id: int) -> tuple[Actor, ExportRequest]:
        actor = self.actor(session, username)
        request = self._request(session, actor, request_id, lock=True)
        if refusal := permissions.refusal_to_review(actor, _facts(request), self.today()):
            raise Forbidden(refusal)
        return actor, request

    def review(self, username: str, request_id: int, decisions: dict[int, str],
               comments: Iterable[tuple[int | None, str, bool]] = (), seen: dict[int, str] | None = None) -> str:
        """One checker's decision on every output file they have not decided yet, with comments.
        ``seen``: the sha256 of each file as the checker saw it; a file replaced since is refused."""
        def act(session: Session) -> str:
            actor, request = self._reviewable(session, username, request_id)
            current = {f.id: f.sha256 for f in request.files}
            changed = [i for i, sha in (seen or {}).items() if current.get(i) != sha]
            if changed:
                raise StateConflict(M("A file of request {id} changed since you opened it; open the request again "
                                      "and review what it holds now.", id=request.id))
            outputs = {f.id: f for f in request.files if f.kind == FileKind.OUTPUT}
            # Before the state: the same review sent twice (to two replicas, say) is named a repeat.
            again = [outputs[i].name for i in decisions
                     if i in outputs and any(r.reviewer == username for r in outputs[i].reviews)]
            if again:
                raise StateConflict(M("You have reviewed {files} already; a second review by the same person is "
                                      "refused.", files=", ".join(again)))
            if request.state not in (S.SUBMITTED, S.PARTIALLY_REVIEWED):
                raise StateConflict(M("Request {id} is {state}; it takes no more reviews.", id=request.id,
                                  state=request.state.value))
            unknown = set(decisions) - outputs.keys()
            if unknown:
                raise BadInput(M("Files {files} are not output files of request {id}; decide on its output files only.",
                                 files=", ".join(map(str, sorted(unknown))), id=request.id))
            missing = [f.name for i, f in outputs.items()
                       if i not in decisions and not any(r.reviewer == username for r in f.reviews)]
            if missing:
                raise BadInput(M("Decide on every output file: {files} has no decision.", files=", ".join(missing)))
            parsed = {i: _decision(d) for i, d in decisions.items()}
            names = ", ".join(outputs[i].name for i in parsed)  # read now: a refused insert expires them
            for file_id, decision in parsed.items():
                session.add(Review(file_id=file_id, reviewer=username, decision=decision, at=_now()))
            try:
                with session.begin_nested():  # a savepoint: a refused insert leaves the transaction usable
                    session.flush()
            except IntegrityError:  # the unique (file, reviewer) holds even where the row lock does not
                raise StateConflict(M("You have reviewed {files} already; a second review by the same person is "
                                      "refused.", files=names)) from None
            for file_id, text, visible in comments:
                if text.strip():
                    self._add_comment(session, actor, request, text, visible, file_id)
            session.flush()
            session.expire(request)
            to = state_after_reviews(len(_complete_reviewers(request)), _required(session, request))
            self._move(session, request, Step.REVIEW, to)
            self._audit(session, actor, AuditAction.EGRESS_REVIEWED, request, state=to.value,
                        decisions={str(i): d.value for i, d in parsed.items()},
                        sha256={str(i): outputs[i].sha256 for i in parsed})
            return to.value
        state = self._tx(act)
        if state == S.REVIEWED:
            self._tell_checkers(request_id, state)
        return state

    def return_(self, username: str, request_id: int, comment: str = "") -> None:
        self._decide(username, request_id, Step.RETURN, S.RETURNED, AuditAction.EGRESS_RETURNED, comment)

    def reject(self, username: str, request_id: int, comment: str = "") -> None:
        self._decide(username, request_id, Step.REJECT, S.REJECTED, AuditAction.EGRESS_REJECTED, comment)

    def _decide(self, username: str, request_id: int, step: Step, to: S, action: AuditAction, comment: str) -> None:
        def act(session: Session) -> None:
            actor, request = self._reviewable(session, username, request_id)
            self._move(session, request, step, to, decided_by=username, decided_at=_now())
            if comment.strip():
                self._add_comment(session, actor, request, comment, True, None)
            self._audit(session, actor, action, request)
        self._tx(act)
        self._tell_author(request_id, to)

    def release(self, username: str, request_id: int) -> list[str]:
        """Approve (a conditional step: one of two concurrent releases wins), copy out, mark released."""
        def approve(session: Session) -> None:
            actor, request = self._reviewable(session, username, request_id)
            if request.state in (S.APPROVED, S.RELEASED):  # by another checker, or the same one twice
                raise StateConflict(M("Request {id} has been released already (by {who}); nothing more was done.",
                                      id=request.id, who=request.decided_by or "?"))
            required = _required(session, request)
            short = [f.name for f in request.files if f.kind == FileKind.OUTPUT
                     and sum(r.decision == Decision.APPROVE for r in f.reviews) < required]
            if request.state == S.REVIEWED and short:
                raise StateConflict(M("{files} lack {required} approvals; return or reject the request.",
                                  files=", ".join(short), required=required))
            self._move(session, request, Step.APPROVE, S.APPROVED, decided_by=username, decided_at=_now())
            self._audit(session, actor, AuditAction.EGRESS_APPROVED, request)
        self._tx(approve)
        done = self.finish_release(request_id)
        if done is None:  # another replica, finishing interrupted releases at its start, copied it out
            return sorted(f.name for f in self._tx(lambda s: _output_files(s, request_id)))
        return done

    def finish_release(self, request_id: int) -> list[str] | None:
        """Copy an approved request's output files out with the signed record, mark it released and
        tell the author; also run at start. Under the request's row lock, held through the copy:
        ``None`` when it was no longer approved (another replica released it meanwhile)."""
        def copy_out(session: Session) -> list[str] | None:
            request = _locked(session, request_id)
            if request is None or request.state != S.APPROVED:
                return None
            record, files = self._release_record(session, request_id)
            record_sha256 = hashlib.sha256(release.canonical(record)).hexdigest()
            try:  # the row first: a second release is refused before any file is written
                with session.begin_nested():
                    session.add(Release(request_id=request_id, released_by=request.decided_by or "egress",
                                        released_at=_now(), record_sha256=record_sha256))
            except IntegrityError:
                return None
            release.write_release(self.store.releases / str(request_id), files, record,
                                  release.signing_key(self.secrets_dir))
            self._move(session, request, Step.RELEASE, S.RELEASED)
            audit.record(session, request.decided_by or "egress", AuditAction.EGRESS_RELEASED,
                         project=request.project_slug,
                         details={"request": request.id, "files": record["files"], "record_sha256": record_sha256})
            return sorted(files)
        names = self._tx(copy_out)
        if names is not None:
            self._tell_author(request_id, S.RELEASED)
        return names

    def _release_record(self, session: Session, request_id: int) -> tuple[dict[str, Any], dict[str, Path]]:
        request = session.get(ExportRequest, request_id)
        outputs = [f for f in request.files if f.kind == FileKind.OUTPUT]
        groups = {g.name: g for g in request.groups}
        record = {
            "request": request.id, "project": request.project_slug, "author": request.author,
            "title": request.title, "submitted_at": _iso(request.submitted_at),
            "released_by": request.decided_by, "approved_at": _iso(request.decided_at),
            "reviews_required": _required(session, request),
            "files": [{"name": f.name, "path": f.path, "group": f.group_name, "sha256": f.sha256, "size": f.size,
                       "context": groups[f.group_name].context, "controls": groups[f.group_name].controls,
                       "checks": f.checks or [],
                       "reviews": [{"reviewer": r.reviewer, "decision": r.decision.value, "at": _iso(r.at)}
                                   for r in f.reviews]} for f in outputs],
        }
        files = {f.name: self.store.path_of(f.sha256) for f in outputs}
        for entry in record["files"]:
            self._strip_metadata(entry, files)
        return record, files

    def _strip_metadata(self, entry: dict[str, Any], files: dict[str, Path]) -> None:
        """Release an image without its metadata (EXIF, text chunks): the record keeps both digests."""
        source = files[entry["name"]]
        data = source.read_bytes() if Path(entry["name"]).suffix.lower() in (".png", ".jpg", ".jpeg") else None
        if data is None or (clean := strip.stripped(data, entry["name"])) == data:
            return
        digest = hashlib.sha256(clean).hexdigest()
        target = self.store.releases / ".stripped" / f"{digest}{Path(entry['name']).suffix.lower()}"
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = partial_beside(target)
            partial.write_bytes(clean)
            partial.replace(target)
        entry["released_sha256"], entry["metadata_stripped"] = digest, True
        files[entry["name"]] = target

    def resume_releases(self) -> list[int]:
        """Finish releases a crash interrupted between approval and copy (run at start)."""
        pending = self._tx(lambda s: list(s.scalars(select(ExportRequest.id).where(
            ExportRequest.state == S.APPROVED))))
        for request_id in pending:
            self.finish_release(request_id)
        return pending

    def sweep_store(self, grace: float = SWEEP_GRACE) -> int:
        """Remove store files no row names, safely while other replicas freeze (``Store.sweep``)."""
        candidates = self.store.candidates_for_sweep(grace)  # listed first: see Store.sweep
        referenced = set(self._tx(lambda s: [h for h in s.scalars(select(RequestFile.sha256)) if h]))
        return self.store.sweep(candidates, referenced)

    # --- files: for review and after release ---------------------------------------------------------

    def frozen_file(self, username: str, request_id: int, file_id: int) -> tuple[str, Path]:
        """A frozen file, for the output checkers reviewing the request and only while it awaits
        them; every read is audited. Not for the project's members: what has not been released
        does not leave through this service (the workspace holds their own copy)."""
        def read(session: Session) -> tuple[str, Path]:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id)
            if permissions.refusal_to_review(actor, _facts(request), self.today()):
                raise Forbidden(M("The frozen files of a request are read only by the output checkers reviewing it; "
                                  "released files are downloaded from the request's page."))
            if request.state not in AWAITING_CHECKERS:
                raise Forbidden(M("Request {id} is {state}: its files are read only while it awaits its checkers.",
                                  id=request.id, state=request.state.value))
            record = _file(request, file_id)
            if record.sha256 is None:
                raise NotFound(M("{name} is not frozen yet; it is read when the request is submitted.", name=record.name))
            self._audit(session, actor, AuditAction.EGRESS_FILE_READ, request, file=record.name, sha256=record.sha256)
            return record.name, self.store.path_of(record.sha256)
        return self._tx(read)

    def released_file(self, username: str, request_id: int, filename: str) -> Path:
        def act(session: Session) -> Path:
            actor, request = self._downloadable(session, username, request_id)
            if filename not in {f.name for f in request.files if f.kind == FileKind.OUTPUT}:
                raise NotFound(M("Request {id} released no file called “{name}”.", id=request_id, name=filename))
            self._audit(session, actor, AuditAction.EGRESS_DOWNLOADED, request, files=[filename])
            return self.store.releases / str(request_id) / filename
        return self._tx(act)

    def released_zip(self, username: str, request_id: int) -> bytes:
        def act(session: Session) -> list[str]:
            actor, request = self._downloadable(session, username, request_id)
            names = sorted(f.name for f in request.files if f.kind == FileKind.OUTPUT)
            self._audit(session, actor, AuditAction.EGRESS_DOWNLOADED, request, files=names, zip=True)
            return names
        names = self._tx(act)
        folder = self.store.releases / str(request_id)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in [*names, release.RECORD, release.SIGNATURE]:
                archive.write(folder / name, name)
        return buffer.getvalue()

    def _downloadable(self, session: Session, username: str, request_id: int) -> tuple[Actor, ExportRequest]:
        actor = self.actor(session, username)
        request = self._request(session, actor, request_id)
        if refusal := permissions.refusal_to_download(actor, _facts(request)):
            raise Forbidden(refusal)
        if request.state != S.RELEASED:
            raise StateConflict(M("Request {id} is {state}; only released files download.", id=request.id,
                                state=request.state.value))
        return actor, request

    # --- telling people -------------------------------------------------------------------------------

    def _tell_checkers(self, request_id: int, state: str) -> None:
        def recipients(session: Session) -> tuple[list[str], ExportRequest]:
            request = session.get(ExportRequest, request_id)
            members = set(session.scalars(select(Membership.username).where(
                Membership.project_slug == request.project_slug)))
            people = session.scalars(select(Person).where(Person.checker_accredited_until >= self.today())).all()
            return [p.email for p in people if p.email and p.username not in members
                    and p.username != request.author], request
        self._send(recipients, f"Export request {request_id} is {state}",
                   "An export request from project {project} waits for output checkers: {title}.")

    def _tell_author(self, request_id: int, state: S) -> None:
        def recipients(session: Session) -> tuple[list[str], ExportRequest]:
            request = session.get(ExportRequest, request_id)
            author = session.get(Person, request.author)
            return ([author.email] if author.email else []), request
        self._send(recipients, f"Export request {request_id} is {state.value}",
                   "Your export request “{title}” of project {project} is " + state.value + ".")

    def _send(self, recipients: Callable[[Session], tuple[list[str], ExportRequest]], subject: str,
              body: str) -> None:
        if self.notify is None:
            return
        try:
            to, request = self._tx(recipients)
            if to:
                self.notify(to, subject, body.format(project=request.project_slug, title=request.title))
        except Exception:  # an email that does not go out never undoes the act
            log.exception("Could not send the notification %r", subject)


@dataclass(frozen=True)
class _Pending:
    project: str
    check: checks.CheckContext


@dataclass(frozen=True)
class _CheckInputs:
    """The catalogue's part of the checks: overrides, granted dataset versions, earlier releases."""

    rules: dict[str, Any]
    datasets: tuple[tuple[str, str, str, tuple[str, ...]], ...]  # slug, version, storage path, columns
    released: tuple[checks.Released, ...]


def _locked(session: Session, request_id: int) -> ExportRequest | None:
    """The request, its row locked until the transaction ends and read afresh (not from the
    session's cache): another replica's act on it waits, then reads what this one committed."""
    return session.execute(select(ExportRequest).where(ExportRequest.id == request_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar_one_or_none()


def _output_files(session: Session, request_id: int) -> list[RequestFile]:
    return list(session.scalars(select(RequestFile).where(RequestFile.request_id == request_id,
                                                           RequestFile.kind == FileKind.OUTPUT)))


def _facts(request: ExportRequest) -> RequestFacts:
    return RequestFacts(request.project_slug, request.author, request.state == S.DRAFT)


def _file(request: ExportRequest, file_id: int) -> RequestFile:
    found = next((f for f in request.files if f.id == file_id), None)
    if found is None:
        raise NotFound(M("Request {id} has no file {file}.", id=request.id, file=file_id))
    return found


def _required(session: Session, request: ExportRequest) -> int:
    project = session.get(Project, request.project_slug)
    return max(MIN_REVIEWS, project.egress_reviews_required or MIN_REVIEWS)


def _complete_reviewers(request: ExportRequest) -> set[str]:
    """Checkers who decided on every output file."""
    outputs = [f for f in request.files if f.kind == FileKind.OUTPUT]
    if not outputs:
        return set()
    reviewers = [{r.reviewer for r in f.reviews} for f in outputs]
    return set.intersection(*reviewers)


def _member_projects(session: Session, username: str) -> set[str]:
    return set(session.scalars(select(Membership.project_slug).where(Membership.username == username)))


def _kind(kind: str) -> FileKind:
    try:
        return FileKind(kind)
    except ValueError:
        raise BadInput(M("“{kind}” is not a kind of file: say output (to release) or supporting (for the checkers "
                         "only).", kind=kind)) from None


def _decision(decision: str) -> Decision:
    try:
        return Decision(decision)
    except ValueError:
        raise BadInput(M("“{decision}” is not a decision: approve, reject or changes_requested.", decision=decision)) from None


def _group_name(group: str) -> str:
    name = group.strip()
    if not name or len(name) > GROUP_NAME_MAX:
        raise BadInput(M("Name the group of files (1 to {limit} characters), such as “Table 1”.", limit=GROUP_NAME_MAX))
    return name


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
