"""The hub's file-reads API: every file content a workspace shows in the browser, on the record.

A workspace's server (images/singleuser/tre_file_reads.py) asks ``POST /hub/api/tre/file-reads``
before it hands a file's content to the browser, and tells it of each refusal. The server's own API
token says who and where: its owner is the person, and its ``access:servers!server=<user>/<name>``
scope names the server, whose name is the project. Each request is one audit row (person, project,
path, size, sha256, outcome); a read is allowed only while the person's bytes of the day (UTC),
this one included, stay within the threshold. The first read past it alerts the data stewards (an
audit row, and an email to each steward with an address when the TRE has a mail server).

The database work runs in a thread pool: the hub's event loop serves everyone else meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

from jupyterhub.apihandlers.base import APIHandler
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tornado import web

from datasets.audit import AuditAction, record
from tre_core.db import session_scope
from datasets.models import FileReadDay, Person

SERVER_SCOPE = "access:servers!server="
OUTCOMES = ("read", "refused-kind", "refused-size")
ALERT_SUBJECT = "TRE: {person} reached the daily volume of file reads in project {project}"
ALERT_BODY = ("{person}'s workspaces have shown {total} bytes of file content in the browser today, past the "
              "threshold of {limit} bytes; the last file asked for was {path} in project {project}. Further "
              "reads are refused until tomorrow (UTC). The audit log has each read "
              "(`tre audit show`, action workspace.file.read).")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    read_today: int
    alert: list[str] | None = None  # steward addresses to tell, when this read reached the threshold


def record_file_read(session: Session, person: str, project: str, *, path: str, size: int, sha256: str | None,
                     outcome: str, kind: str, daily_limit: int, today: dt.date) -> Verdict:
    """One read (or refusal) on the record, in the caller's transaction, and whether it may go on."""
    details = {"path": path, "size": size, "sha256": sha256, "kind": kind}
    if outcome != "read":
        record(session, person, AuditAction.WORKSPACE_FILE_REFUSED, project=project,
               details={**details, "reason": outcome.removeprefix("refused-")})
        return Verdict(False, _bytes_today(session, person, today))
    _ensure_day(session, person, today)
    # one conditional UPDATE: two reads at once can never both pass the threshold
    added = session.execute(
        update(FileReadDay)
        .where(FileReadDay.username == person, FileReadDay.day == today,
               FileReadDay.bytes_read + size <= daily_limit, FileReadDay.blocked_at.is_(None))
        .values(bytes_read=FileReadDay.bytes_read + size, reads=FileReadDay.reads + 1)
        .returning(FileReadDay.bytes_read)).scalar_one_or_none()
    if added is not None:
        record(session, person, AuditAction.WORKSPACE_FILE_READ, project=project, details=details)
        return Verdict(True, added)
    record(session, person, AuditAction.WORKSPACE_FILE_REFUSED, project=project,
           details={**details, "reason": "daily-volume"})
    first_block = session.execute(
        update(FileReadDay).where(FileReadDay.username == person, FileReadDay.day == today,
                                  FileReadDay.blocked_at.is_(None))
        .values(blocked_at=dt.datetime.now(dt.UTC)).returning(FileReadDay.bytes_read)).scalar_one_or_none()
    total = _bytes_today(session, person, today)
    if first_block is None:
        return Verdict(False, total)
    stewards = sorted(session.scalars(select(Person).where(Person.is_data_steward)), key=lambda p: p.username)
    record(session, person, AuditAction.WORKSPACE_READS_BLOCKED, project=project,
           details={"read_today": total, "daily_limit": daily_limit, "last_path": path,
                    "stewards_alerted": [p.username for p in stewards]})
    return Verdict(False, total, alert=[p.email for p in stewards if p.email])


def _ensure_day(session: Session, person: str, today: dt.date) -> None:
    if session.get(FileReadDay, (person, today)) is not None:
        return
    try:
        with session.begin_nested():
            session.execute(insert(FileReadDay).values(username=person, day=today, bytes_read=0, reads=0))
    except IntegrityError:
        pass  # another read of the same person made the row first


def _bytes_today(session: Session, person: str, today: dt.date) -> int:
    return session.scalar(select(FileReadDay.bytes_read).where(
        FileReadDay.username == person, FileReadDay.day == today)) or 0


def send_alert(smtp: tuple[str, int, str] | None, to: list[str], subject: str, body: str) -> None:
    """One email per steward; no mail server configured, the audit row is the alert."""
    if not (smtp and to):
        return
    host, port, sender = smtp
    with smtplib.SMTP(host, port, timeout=10) as server:
        for address in to:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, address, subject
            message.set_content(body)
            server.send_message(message)


class FileReadsHandler(APIHandler):
    """``POST /hub/api/tre/file-reads`` from a workspace server, with that server's own token."""

    def initialize(self, catalogue_url: str, daily_limit: int, smtp: tuple[str, int, str] | None = None) -> None:
        self.catalogue_url, self.daily_limit, self.smtp = catalogue_url, daily_limit, smtp

    def _workspace(self) -> tuple[str, str]:
        """(person, project) of the server whose token signed the request; 403 for anything else."""
        token = self.get_token() if self.get_auth_token() else None
        user = self.current_user
        if token is None or user is None or token.user is None or not getattr(self, "_token_authenticated", False):
            raise web.HTTPError(403, "Only a workspace server's own token may record file reads.")
        prefix = f"{SERVER_SCOPE}{user.name}/"
        servers = [scope.removeprefix(prefix) for scope in token.scopes if scope.startswith(prefix)]
        if len(servers) != 1 or not servers[0] or not token.note.startswith("Server at "):
            raise web.HTTPError(403, "Only a workspace server's own token may record file reads.")
        return user.name, servers[0]

    async def post(self) -> None:
        person, project = self._workspace()
        try:
            body = json.loads(self.request.body)
            path, size, outcome, kind = str(body["path"]), int(body["size"]), str(body["outcome"]), str(body["kind"])
            sha256 = body.get("sha256")
        except (ValueError, KeyError, TypeError):
            raise web.HTTPError(400, "Expected JSON with path, size, sha256, outcome and kind.") from None
        if outcome not in OUTCOMES or size < 0 or (sha256 is not None and len(str(sha256)) != 64):
            raise web.HTTPError(400, f"outcome must be one of {', '.join(OUTCOMES)}; size a count of bytes.")
        verdict = await asyncio.get_running_loop().run_in_executor(None, self._record, person, project, path, size,
                                                                   sha256, outcome, kind)
        if verdict.alert is not None:
            self.log.warning("tre: %s reached the daily volume of file reads (%d bytes) in %s", person,
                             verdict.read_today, project)
            subject = ALERT_SUBJECT.format(person=person, project=project)
            body_text = ALERT_BODY.format(person=person, project=project, total=verdict.read_today,
                                          limit=self.daily_limit, path=path)
            try:
                await asyncio.get_running_loop().run_in_executor(None, send_alert, self.smtp, verdict.alert,
                                                                 subject, body_text)
            except OSError as error:  # the block and its audit row stand; only the email is missing
                self.log.error("tre: could not email the stewards about %s: %s", person, error)
        self.write({"allowed": verdict.allowed, "read_today": verdict.read_today, "daily_limit": self.daily_limit})

    def _record(self, person: str, project: str, path: str, size: int, sha256: str | None, outcome: str,
                kind: str) -> Verdict:
        with session_scope(self.catalogue_url) as session:
            return record_file_read(session, person, project, path=path, size=size, sha256=sha256,
                                    outcome=outcome, kind=kind, daily_limit=self.daily_limit,
                                    today=dt.datetime.now(dt.UTC).date())


def handlers(catalogue_url: str, daily_limit: int, smtp: tuple[str, int, str] | None) -> list[tuple]:
    """For ``c.JupyterHub.extra_handlers`` (JupyterHub puts them under ``/hub``)."""
    return [(r"/api/tre/file-reads", FileReadsHandler,
             {"catalogue_url": catalogue_url, "daily_limit": daily_limit, "smtp": smtp})]
