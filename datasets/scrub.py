"""The scrubber: re-hash registered dataset versions against their manifests, at a bounded rate.

A pre-mount check compares only path, size, inode and modification time; a change that keeps
all four (a write in place that restores the time, bit rot) is found here, by reading every
byte again. On a mismatch the version is suspended (no new mount; the reconciler stops running
workspaces that mount it, as for an ended grant), one audit row is written and the data stewards
are told (by mail when the TRE has a mail server, in the log always). Run by ``tre datasets scrub``
and, in the background, by the hub's ``scrubber`` service (``hub/scrubber.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import or_, select

from tre_core.db import session_scope
from datasets.manifest import TreeChanged, sha256_file, verify_tree
from datasets.models import DatasetVersion, Person, VersionStatus
from tre_core.settings import TRESettings
from datasets.versions import suspend

log = logging.getLogger("tre.scrub")


@dataclass(frozen=True)
class ScrubResult:
    slug: str
    version: str
    ok: bool
    summary: str


class Throttle:
    """Sleep so that the bytes read stay under ``mb_s`` megabytes a second (0: no bound)."""

    def __init__(self, mb_s: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate, self.sleep, self.start, self.done = mb_s * 1e6, sleep, time.monotonic(), 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.rate > 0:
            ahead = self.done / self.rate - (time.monotonic() - self.start)
            if ahead > 0:
                self.sleep(ahead)


def first_mismatch(folder: Path, files: list[list], progress: Callable[[int], None]) -> str | None:
    """What differs from the manifest, reading every byte; None when the version is intact."""
    try:
        verify_tree(folder, files)
    except TreeChanged as changed:
        return changed.problem
    for path, _size, digest, _inode, _mtime in files:
        try:
            if sha256_file(folder / path, progress) != digest:
                return f"{path} does not match its registered sha256"
        except OSError as exc:
            return f"{path} cannot be read ({exc.strerror})"
    return None


def scrub_versions(settings: TRESettings, *, only: str | None = None, rate_mb_s: float = 0.0,
                   progress: Callable[[int, int], None] | None = None,
                   due_before: dt.datetime | None = None) -> list[ScrubResult]:
    """One pass over the active versions (with ``due_before``, only those not scrubbed since)."""
    with session_scope(settings.catalogue_url) as session:
        query = select(DatasetVersion).where(DatasetVersion.status == VersionStatus.ACTIVE)
        if only:
            query = query.where(DatasetVersion.dataset_slug == only)
        if due_before is not None:
            query = query.where(or_(DatasetVersion.scrubbed_at.is_(None), DatasetVersion.scrubbed_at < due_before))
        todo = [(v.dataset_slug, v.version, v.storage_path, v.files, v.byte_count)
                for v in session.scalars(query)]
    todo.sort(key=lambda v: (v[0], v[1]))
    total = sum(v[4] for v in todo)
    throttle = Throttle(rate_mb_s)

    def advance(n: int) -> None:
        throttle(n)
        if progress:
            progress(total, n)

    results = []
    for slug, version, storage_path, files, _ in todo:
        problem = first_mismatch(settings.data_root / storage_path, files, advance)
        results.append(_record(settings, slug, version, problem))
    return results


def _record(settings: TRESettings, slug: str, version: str, problem: str | None) -> ScrubResult:
    with session_scope(settings.catalogue_url) as session:
        row = session.get(DatasetVersion, (slug, version))
        row.scrubbed_at = dt.datetime.now(dt.UTC)
        if problem is None:
            return ScrubResult(slug, version, True, f"intact ({len(row.files)} files re-hashed)")
        suspend(session, "scrubber", slug, version, problem)
        stewards = session.scalars(select(Person).where(Person.is_data_steward)).all()
        addresses = [p.email for p in stewards if p.email]
    subject = f"TRE: dataset {slug} {version} suspended"
    body = (f"The scrubber found dataset {slug} {version} changed since registration: {problem}.\n"
            "It is suspended: no workspace mounts it, and running ones that did are stopped.\n"
            "Restore the files from the original and register them as a new version "
            "(`tre datasets add`), then grant it to the projects that used this one.\n")
    log.error("%s: %s", subject, problem)
    _mail(settings, addresses, subject, body)
    return ScrubResult(slug, version, False, f"SUSPENDED: {problem}")


def _mail(settings: TRESettings, addresses: list[str], subject: str, body: str) -> None:
    if not (settings.smtp_host and settings.smtp_from and addresses):
        return
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as server:
            for address in addresses:
                message = EmailMessage()
                message["From"], message["To"], message["Subject"] = settings.smtp_from, address, subject
                message.set_content(body)
                server.send_message(message)
    except OSError:  # the suspension stands; the log and the audit row say it
        log.exception("could not mail the data stewards about %s", subject)
