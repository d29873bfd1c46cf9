"""The one layer that changes export requests: every act of the pages and of the JSON API.

Each act checks who may act (``permissions``) and what the state allows (``policies``), then
writes its rows and its audit row in one transaction; a state changes only through a conditional
UPDATE on the state that was read (``data_access.move``), so two checkers releasing at once yield
one release. Nothing else in the service writes a row.

Several replicas of the service may act on one request at once (README: "More than one host"):
every act that changes a request first locks its row (``SELECT ... FOR UPDATE`` on PostgreSQL), so
acts on one request run one after the other, each reading what the one before committed. Two
reviews sent at once are then both counted, the same review sent twice is refused as a repeat, and
the copy out happens under the lock, so a replica finishing interrupted releases at start never
writes a release another replica is writing; whoever moves the request to released tells the
author, once. A whole release (approval, copy out, commit) also holds the request's release lease
(``lease``): a release whose process died frees it, and a retry finishes what it left approved.

Work on files happens outside transactions and before the commit that names them: submitting
freezes every file into the store first (``submission``), then records the digests and the new
state in one commit, so a crash leaves the request as it was or fully submitted. Emails go out
after the commit, never inside it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from datasets import accreditation, audit
from datasets.audit import AuditAction
from egress_review.checks.i18n import Msg
from egress_review import checks, lease, permissions, policies, release, submission
from egress_review import data_access as db
from egress_review.errors import BadInput, Forbidden, NotFound, StateConflict
from egress_review.models import Comment, Decision, ExportRequest, FileGroup, FileKind, Release, RequestFile, Review
from egress_review.permissions import Actor
from egress_review.policies import Step
from egress_review.reading import S, AirlockReader, Limits, M, _file, _no_workspace, _now, log
from egress_review.store import SWEEP_GRACE
from egress_review.views import complete_reviewers, facts, output_facts, required
from tre_core import faults

__all__ = ["Airlock", "BadInput", "Forbidden", "Limits", "NotFound", "StateConflict"]

RESERVED_NAMES = frozenset({release.RECORD, release.SIGNATURE})  # the release folder's own record
GROUP_NAME_MAX = 100


class Airlock(AirlockReader):
    """Every act that changes an export request; reading is ``AirlockReader``."""

    # Seconds a release waits for another process copying the same request out before it says so.
    release_wait = 30.0

    def _move(self, session: Session, request: ExportRequest, step: Step, to: S, **values: Any) -> None:
        policies.require_transition(request.state, step, to)
        if not db.move(session, request, to, **values):
            raise StateConflict(M("Request {id} changed while you were acting on it; look at it again.", id=request.id))

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
        if refusal := permissions.refusal_to_edit(actor, facts(request)):
            raise Forbidden(refusal)
        policies.check_editable(request.id, request.state)
        return actor, request

    def _workspace_size(self, request: ExportRequest, path: str) -> int:
        try:
            return submission.workspace_size(self.workspace(request.project_slug), path, self.limits.max_file_bytes)
        except FileNotFoundError:
            raise BadInput(_no_workspace(request.project_slug), "path") from None

    def add_file(self, username: str, request_id: int, path: str, group: str, kind: str,
                 context: str | None = None, controls: str | None = None) -> int:
        """Add a workspace file to a group (created on first use) and run the automatic checks on it at
        once, so the researcher sees the verdicts before submitting; it is frozen and checked again at
        submission."""
        file_id = self._tx(self._add_file, username, request_id, path, group, kind, context, controls)
        self._check_now(username, request_id, file_id)
        return file_id

    def _add_file(self, session: Session, username: str, request_id: int, path: str, group: str, kind: str,
                  context: str | None, controls: str | None) -> int:
        actor, request = self._editable(session, username, request_id)
        if not path.strip():
            raise BadInput(M("Choose a file: click one in the project folder, or type its path relative to "
                             "/project, such as outputs/table.csv."), "path")
        kind_ = _kind(kind)
        group_ = _group_name(group)
        relative = path.strip().removeprefix("/project/")
        size = self._workspace_size(request, relative)
        normalised = "/".join(p for p in relative.split("/") if p not in ("", "."))
        if any(f.path == normalised for f in request.files):
            raise BadInput(M("“{path}” is in this request already; replace it instead.", path=normalised), "path")
        name = normalised.rsplit("/", 1)[-1]
        if name in RESERVED_NAMES:
            raise BadInput(M("“{name}” is the name of the release's own record; rename the file in the workspace.",
                             name=name), "path")
        if kind_ == FileKind.OUTPUT and any(f.name == name and f.kind == FileKind.OUTPUT for f in request.files):
            raise BadInput(M("Another output file is called “{name}”; released files sit side by side, so rename "
                             "one in the workspace.", name=name), "path")
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
            submission.workspace_size(self.workspace(request.project_slug), record.path, self.limits.max_file_bytes)
            dropped = [r.reviewer for r in record.reviews]
            db.delete_reviews(session, [record.id])
            record.sha256, record.size, record.checks, record.checked_sha256 = None, None, [], None
            self._audit(session, actor, AuditAction.EGRESS_FILE_REPLACED, request, file=record.id,
                        path=record.path, reviews_reset=dropped)
        self._tx(act)
        self._check_now(username, request_id, file_id)

    def remove_file(self, username: str, request_id: int, file_id: int) -> None:
        """Take a file out of a draft or returned request (its reviews go with it); a group left
        without files goes too. The workspace file is not touched."""
        def act(session: Session) -> None:
            actor, request = self._editable(session, username, request_id)
            record = _file(request, file_id)
            for c in request.comments:
                if c.file_id == record.id:
                    c.file_id = None
            request.files.remove(record)
            if not any(f.group_name == record.group_name for f in request.files):
                request.groups[:] = [g for g in request.groups if g.name != record.group_name]
            self._audit(session, actor, AuditAction.EGRESS_FILE_REMOVED, request, file=file_id, path=record.path)
        self._tx(act)

    def _check_now(self, username: str, request_id: int, file_id: int) -> None:
        """The same checks as at submission, on a copy of the file as it is now (kept in the store by
        its digest, so the page shows the very cells that were checked). A file that cannot be read now
        keeps no verdict and the act stands: submission reads and checks it again."""
        def plan(session: Session):
            _, request = self._editable(session, username, request_id)
            pending = [submission.pending_of(request, _file(request, file_id))]
            inputs = submission.inputs(session, request.project_slug, self.today(), self.store, username)
            return request.project_slug, pending, inputs

        def record(session: Session) -> None:
            request = db.locked(session, request_id)
            found = next((f for f in request.files if f.id == file_id), None) if request else None
            if found is not None and found.sha256 is None:  # not frozen meanwhile by a submission
                found.checked_sha256, _, found.checks = checked[file_id]
        try:
            project, pending, inputs = self._tx(plan)
            checked = self.checker.freeze_and_check(self.workspace(project), pending, inputs,
                                                    self.limits.max_file_bytes)
            self._tx(record)
        except (BadInput, Forbidden, NotFound, StateConflict, OSError):
            log.warning("No early check of file %s of request %s", file_id, request_id, exc_info=True)

    def comment(self, username: str, request_id: int, text: str, *, visible_to_researcher: bool = True,
                file_id: int | None = None) -> None:
        """A note on a request: the researcher's answer, or a checker's (private unless made visible)."""
        def act(session: Session) -> None:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id)
            facts_ = facts(request)
            checker = permissions.refusal_to_review(actor, facts_, self.today()) is None
            if not checker and permissions.refusal_to_edit(actor, facts_):
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
        state, project, pending, inputs = self._tx(self._plan_submission, username, request_id)
        frozen = self.checker.freeze_and_check(self.workspace(project), pending, inputs, self.limits.max_file_bytes)
        faults.pause_at("submission.frozen")
        total = self._tx(self._commit_submission, username, request_id, state, frozen)
        self._tell_checkers(request_id, total)
        return total

    def _plan_submission(self, session: Session, username: str, request_id: int):
        _, request = self._editable(session, username, request_id)
        if why := accreditation.refusal(session, username, self.today()):  # an expired accreditation exports nothing
            raise Forbidden(M(why.template, **why.params))
        pending = submission.plan(request, self.workspace(request.project_slug), self.limits.max_file_bytes,
                                  self.limits.max_request_bytes)
        inputs = submission.inputs(session, request.project_slug, self.today(), self.store, username)
        return request.state, request.project_slug, pending, inputs

    def check_context_of(self, project: str) -> tuple[list[checks.CheckResult], checks.CheckContext]:
        """The checks' context for a project, as at submission (``tre check --project``)."""
        if self._tx(lambda session: db.project(session, project)) is None:
            raise NotFound(M("No project {project} in the catalogue.", project=project))
        return self.checker.context(self._tx(submission.inputs, project, self.today(), self.store))

    def _commit_submission(self, session: Session, username: str, request_id: int, was: S,
                           frozen: submission.Frozen) -> str:
        actor, request = self._editable(session, username, request_id)
        unfrozen = {f.id for f in request.files if f.sha256 is None}
        if request.state != was or unfrozen != set(frozen):
            raise StateConflict(M("Request {id} changed while it was being submitted; submit it again.", id=request.id))
        for f in request.files:
            if f.id in frozen:
                f.sha256, f.size, f.checks = frozen[f.id]
                f.checked_sha256 = f.sha256
        if was == S.RETURNED:
            # Approvals still hold for unchanged files; every other decision is taken again.
            db.delete_reviews(session, [f.id for f in request.files], keep_approvals=True)
            session.flush()
            session.expire(request)
            to = policies.state_after_reviews(len(complete_reviewers(request)), required(session, request))
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
            if refusal := permissions.refusal_to_edit(actor, facts(request)):
                raise Forbidden(refusal)
            self._move(session, request, Step.WITHDRAW, S.WITHDRAWN)
            self._audit(session, actor, AuditAction.EGRESS_WITHDRAWN, request)
        self._tx(act)

    # --- the checkers' acts ---------------------------------------------------------------------

    def _reviewable(self, session: Session, username: str, request_id: int) -> tuple[Actor, ExportRequest]:
        actor = self.actor(session, username)
        request = self._request(session, actor, request_id, lock=True)
        if refusal := permissions.refusal_to_review(actor, facts(request), self.today()):
            raise Forbidden(refusal)
        return actor, request

    def review(self, username: str, request_id: int, decisions: dict[int, str],
               comments: Iterable[tuple[int | None, str, bool]] = (), seen: dict[int, str] | None = None,
               overrides: dict[int, str] | None = None) -> str:
        """One checker's decision on every output file they have not decided yet, with comments.
        ``seen``: the sha256 of each file as the checker saw it; a file replaced since is refused.
        ``overrides``: the checker's written reason for approving a file the automatic checks failed."""
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
                raise StateConflict(_reviewed_already(", ".join(again)))
            policies.check_takes_reviews(request.id, request.state)
            unknown = set(decisions) - outputs.keys()
            if unknown:
                raise BadInput(M("Files {files} are not output files of request {id}; decide on its output files only.",
                                 files=", ".join(map(str, sorted(unknown))), id=request.id))
            missing = [f.name for i, f in outputs.items()
                       if i not in decisions and not any(r.reviewer == username for r in f.reviews)]
            if missing:
                raise BadInput(M("Decide on every output file: {files} has no decision.", files=", ".join(missing)))
            parsed = {i: _decision(d) for i, d in decisions.items()}
            kept = {i: policies.check_override(outputs[i].name, checks.outcome(outputs[i].checks or []), d.value,
                                               (overrides or {}).get(i, "")) for i, d in parsed.items()}
            names = ", ".join(outputs[i].name for i in parsed)  # read now: a refused insert expires them
            for file_id, decision in parsed.items():
                session.add(Review(file_id=file_id, reviewer=username, decision=decision, at=_now(),
                                   override_reason=kept[file_id]))
            try:
                with session.begin_nested():  # a savepoint: a refused insert leaves the transaction usable
                    session.flush()
            except IntegrityError:  # the unique (file, reviewer) holds even where the row lock does not
                raise StateConflict(_reviewed_already(names)) from None
            for file_id, text, visible in comments:
                if text.strip():
                    self._add_comment(session, actor, request, text, visible, file_id)
            session.flush()
            session.expire(request)
            to = policies.state_after_reviews(len(complete_reviewers(request)), required(session, request))
            self._move(session, request, Step.REVIEW, to)
            self._audit(session, actor, AuditAction.EGRESS_REVIEWED, request, state=to.value,
                        decisions={str(i): d.value for i, d in parsed.items()},
                        sha256={str(i): outputs[i].sha256 for i in parsed},
                        **({"overrides": {str(i): r for i, r in kept.items() if r}} if any(kept.values()) else {}))
            faults.pause_at("review.before_commit")
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
        """Approve (a conditional step: one of two concurrent releases wins), copy out, mark released.

        All under the request's release lease (``lease``): a request found approved while holding it
        is one whose release was interrupted (its copier died, which freed the lease), and this
        retry finishes it, audited ``egress.release.retried``; a request being copied right now
        is waited for, then found released and refused as such."""
        def approve(session: Session) -> None:
            actor, request = self._reviewable(session, username, request_id)
            if request.state == S.APPROVED:  # nobody holds the lease: its release was interrupted
                self._audit(session, actor, AuditAction.EGRESS_RELEASE_RETRIED, request,
                            approved_by=request.decided_by)
                return
            policies.check_release(request.id, request.state, request.decided_by, output_facts(request),
                                   required(session, request))
            self._move(session, request, Step.APPROVE, S.APPROVED, decided_by=username, decided_at=_now())
            self._audit(session, actor, AuditAction.EGRESS_APPROVED, request)
        with lease.release_lease(self.url, request_id, wait=self.release_wait) as held:
            if not held:
                raise StateConflict(M("Request {id} is being released right now by another of the service's "
                                      "processes; look at it again in a minute.", id=request_id))
            self._tx(approve)
            faults.pause_at("release.approved")
            done = self._finish_leased(request_id)
        if done is None:  # another replica, finishing interrupted releases at its start, copied it out
            return sorted(f.name for f in self._tx(db.output_files, request_id))
        return done

    def finish_release(self, request_id: int) -> list[str] | None:
        """Finish an approved request's release unless another process holds its lease (run at
        start for every approved request): ``None`` when it was not done here. It waits a few
        seconds for the lease: a copier killed a moment ago may not have lost its session yet."""
        with lease.release_lease(self.url, request_id, wait=5.0) as held:
            return self._finish_leased(request_id) if held else None

    def _finish_leased(self, request_id: int) -> list[str] | None:
        """Copy an approved request's output files out with the signed record, mark it released and
        tell the author, holding its lease. Under the request's row lock, held through the copy:
        ``None`` when it was no longer approved (another replica released it meanwhile)."""
        def copy_out(session: Session) -> list[str] | None:
            request = db.locked(session, request_id)
            if request is None or request.state != S.APPROVED:
                return None
            record, files = release.record_of(request, required(session, request), self.store.path_of,
                                              self.store.releases / ".stripped")
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
            faults.pause_at("release.before_commit")
            return sorted(files)
        names = self._tx(copy_out)
        if names is not None:
            audit.checkpoint_after_release(self.url, self.secrets_dir)
            self._tell_author(request_id, S.RELEASED)
        return names

    def resume_releases(self) -> list[int]:
        """Finish releases a crash interrupted between approval and copy (run at start)."""
        pending = self._tx(db.approved_ids)
        for request_id in pending:
            self.finish_release(request_id)
        return pending

    def sweep_store(self, grace: float = SWEEP_GRACE) -> int:
        """Remove store files no row names, safely while other replicas freeze (``Store.sweep``)."""
        candidates = self.store.candidates_for_sweep(grace)  # listed first: see Store.sweep
        return self.store.sweep(candidates, self._tx(db.referenced_digests))


def _reviewed_already(files: str) -> Msg:
    return M("You have reviewed {files} already; a second review by the same person is refused.", files=files)


def _kind(kind: str) -> FileKind:
    try:
        return FileKind(kind)
    except ValueError:
        raise BadInput(M("“{kind}” is not a kind of file: say output (to release) or supporting (for the checkers "
                         "only).", kind=kind), "kind") from None


def _decision(decision: str) -> Decision:
    try:
        return Decision(decision)
    except ValueError:
        raise BadInput(M("“{decision}” is not a decision: approve, reject or changes_requested.", decision=decision)) from None


def _group_name(group: str) -> str:
    name = group.strip()
    if not name or len(name) > GROUP_NAME_MAX:
        raise BadInput(M("Name the group of files (1 to {limit} characters), such as “Table 1”.", limit=GROUP_NAME_MAX),
                       "group")
    return name
