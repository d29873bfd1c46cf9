"""Reading export requests, and what every act shares: the database, the person, the audit row.

``AirlockReader`` answers what a person sees (their requests, the checker's queue, a frozen file
for review, released files) and holds the plumbing the acts of ``logic.Airlock`` use: one
transaction per act, who the person is (from the catalogue's access questions), the request as
they may see it, its audit row and the emails sent after a commit. Reading a file is audited;
nothing here changes a request's state.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from datasets import access, audit
from datasets.audit import AuditAction
from tre_core.db import session_scope
from egress_review.checks.i18n import Msg
from egress_review import permissions, policies, release, submission
from egress_review import data_access as db
from egress_review.errors import BadInput, Forbidden, NotFound
from egress_review.models import ExportRequest, FileKind, RequestFile, RequestState
from egress_review.permissions import Actor
from egress_review.store import Entry, PathRefused, Store, list_folder
from egress_review.views import RequestView, facts, view_of

log = logging.getLogger("tre.egress")
M = Msg
T = TypeVar("T")
S = RequestState


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_request_bytes: int


class AirlockReader:
    """The export requests of one TRE: its database, workspaces, store, release key and clock."""

    def __init__(self, database_url: str, *, workspaces_root: Path, store: Store, secrets_dir: Path,
                 limits: Limits, notify: Callable[[list[str], str, str], None] | None = None,
                 today: Callable[[], dt.date] = dt.date.today, data_root: Path | None = None,
                 checks_cache: Path | None = None, extracts_root: Path | None = None) -> None:
        self.url = database_url
        self.workspaces_root = workspaces_root
        self.store = store
        self.secrets_dir = secrets_dir
        self.limits = limits
        self.notify = notify
        self.today = today
        # Where the granted datasets are (for the identifier index) and where their indexes are cached.
        # and where the project's extracts are (their pseudonyms join the index)
        self.checker = submission.Checker(store, data_root, checks_cache, extracts_root)

    # --- plumbing -----------------------------------------------------------------------------

    def _tx(self, act: Callable[..., T], *args: Any) -> T:
        with session_scope(self.url) as session:
            return act(session, *args)

    def workspace(self, project: str) -> Path:
        return self.workspaces_root / project / "shared"

    def actor(self, session: Session, username: str) -> Actor:
        person = db.person(session, username)
        if person is None:
            raise Forbidden(M("{username} is not in the TRE's catalogue; ask an admin to add you.", username=username))
        today = self.today()
        return Actor(username, access.member_projects(session, username, today), person.is_admin,
                     person.checker_accredited_until, ties=access.projects_tied_to(session, username),
                     accredited=access.is_accredited_checker(session, username, today))

    def _request(self, session: Session, actor: Actor, request_id: int, *, lock: bool = False) -> ExportRequest:
        request = db.locked(session, request_id) if lock else db.request(session, request_id)
        if request is None or not permissions.may_view(actor, facts(request), self.today()):
            raise NotFound(M("There is no export request {id} that you may see; your requests are listed on the "
                             "egress home page.", id=request_id))
        return request

    def _audit(self, session: Session, actor: Actor, action: AuditAction, request: ExportRequest,
               **details: Any) -> None:
        audit.record(session, actor.username, action, project=request.project_slug,
                     details={"request": request.id, **details})

    # --- reading --------------------------------------------------------------------------------

    def list_requests(self, username: str) -> list[RequestView]:
        def read(session: Session) -> list[RequestView]:
            actor, today = self.actor(session, username), self.today()
            reviews = actor.checker_until is not None and actor.accredited_on(today)
            candidates = db.requests_for(session, everything=actor.is_admin, projects=actor.projects,
                                         submitted_outside=actor.projects | actor.ties if reviews else None,
                                         author_not=username)
            return [view_of(session, actor, r, today) for r in candidates if permissions.may_view(actor, facts(r), today)]
        return self._tx(read)

    def get(self, username: str, request_id: int) -> RequestView:
        def read(session: Session) -> RequestView:
            actor = self.actor(session, username)
            return view_of(session, actor, self._request(session, actor, request_id), self.today())
        return self._tx(read)

    def queue(self, username: str) -> list[RequestView]:
        """Requests waiting for this checker: to review, or reviewed and waiting for a decision."""
        return [r for r in self.list_requests(username) if r.may_review and r.state in policies.AWAITING_CHECKERS
                and (not r.reviewed_by_me or r.state == S.REVIEWED)]

    def waiting_count(self, username: str) -> int:
        """What waits for this person: returned requests of theirs, or the checker's queue."""
        mine = [r for r in self.list_requests(username) if r.author == username and r.state == S.RETURNED]
        return len(mine) + len(self.queue(username))

    def roles(self, username: str) -> tuple[bool, bool]:
        """(exports results: an active member of a project, reviews: an accredited output checker),
        for the navigation and the landing page: each person sees what their role gives them to do."""
        actor = self._tx(lambda s: self.actor(s, username))
        return bool(actor.projects), actor.accredited_on(self.today())

    def checked_copies(self, username: str, request_id: int) -> dict[int, Path]:
        """The copies each file's automatic checks ran on, for the project's members to see their flagged
        cells in context on the request's page (their own results, which they read in the workspace
        anyway; never served as a file). Checkers read the frozen files through ``frozen_file``."""
        def read(session: Session) -> dict[int, Path]:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id)
            if permissions.refusal_to_download(actor, facts(request)):
                return {}
            return {f.id: self.store.path_of(f.checked_sha256) for f in request.files if f.checked_sha256}
        return self._tx(read)

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
            raise BadInput(_no_workspace(project)) from None

    # --- files: for review and after release ---------------------------------------------------------

    def frozen_file(self, username: str, request_id: int, file_id: int) -> tuple[str, Path]:
        """A frozen file, for the output checkers reviewing the request and only while it awaits
        them; every read is audited. Not for the project's members: what has not been released
        does not leave through this service (the workspace holds their own copy)."""
        def read(session: Session) -> tuple[str, Path]:
            actor = self.actor(session, username)
            request = self._request(session, actor, request_id)
            if permissions.refusal_to_review(actor, facts(request), self.today()):
                raise Forbidden(M("The frozen files of a request are read only by the output checkers reviewing it; "
                                  "released files are downloaded from the request's page."))
            policies.check_frozen_readable(request.id, request.state)
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

    def released_zip(self, username: str, request_id: int) -> list[tuple[Path, str]]:
        """What the zip of a released request holds: (file in the release store, name in the zip);
        the handler streams it (``zip_stream``), so a large release is never held in memory."""
        def act(session: Session) -> list[str]:
            actor, request = self._downloadable(session, username, request_id)
            names = sorted(f.name for f in request.files if f.kind == FileKind.OUTPUT)
            self._audit(session, actor, AuditAction.EGRESS_DOWNLOADED, request, files=names, zip=True)
            return names
        names = self._tx(act)
        folder = self.store.releases / str(request_id)
        return [(folder / name, name) for name in [*names, release.RECORD, release.SIGNATURE]]

    def _downloadable(self, session: Session, username: str, request_id: int) -> tuple[Actor, ExportRequest]:
        actor = self.actor(session, username)
        request = self._request(session, actor, request_id)
        if refusal := permissions.refusal_to_download(actor, facts(request)):
            raise Forbidden(refusal)
        policies.check_downloadable(request.id, request.state)
        return actor, request

    # --- telling people -------------------------------------------------------------------------------

    def _tell_checkers(self, request_id: int, state: str) -> None:
        def recipients(session: Session) -> tuple[list[str], ExportRequest]:
            request = db.request(session, request_id)
            return db.checker_emails(session, request, self.today()), request
        self._send(recipients, f"Export request {request_id} is {state}",
                   "An export request from project {project} waits for output checkers: {title}.")

    def _tell_author(self, request_id: int, state: S) -> None:
        def recipients(session: Session) -> tuple[list[str], ExportRequest]:
            request = db.request(session, request_id)
            author = db.person(session, request.author)
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


def _file(request: ExportRequest, file_id: int) -> RequestFile:
    found = next((f for f in request.files if f.id == file_id), None)
    if found is None:
        raise NotFound(M("Request {id} has no file {file}.", id=request.id, file=file_id))
    return found


def _no_workspace(project: str) -> Msg:
    return M("Project {project} has no workspace folder yet; start its workspace once.", project=project)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
