"""Two replicas of the egress review on one PostgreSQL database and one store, acting at the same
instant: two ``Airlock`` objects (each its own engine pool, as two processes have) driven from
threads released by one barrier, many rounds. Exactly one release, one approval, one released
audit row and one email to the author per request; both reviews counted when two checkers send
theirs at once; the same review sent twice is refused as a repeat; a sweep leaves alone what
another replica has just frozen; replicas creating the release key at once all get the same key.
The real processes behind real HTTP are in tests/integration/test_egress_replicas.py."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from tre_core.db import session_scope
from datasets.models import AuditEvent
from egress_review import release
from egress_review.models import ExportRequest, Release, Review
from egress_review.logic import Airlock
from egress_review.store import SWEEP_GRACE, Store, sha256_of
from egress_review.errors import StateConflict
from tests.unit.egress_fixtures import TABLE, make_airlock, submitted_request

ROUNDS = 8
# Replicas coordinate through PostgreSQL's row locks; with SQLite the TRE refuses to run replicas.
on_postgresql = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


class Mailbox:
    def __init__(self) -> None:
        self.sent: list[tuple[list[str], str]] = []
        self.lock = threading.Lock()

    def __call__(self, to: list[str], subject: str, body: str) -> None:
        with self.lock:
            self.sent.append((to, subject))


@pytest.fixture
def replicas(catalogue_url, tmp_path) -> tuple[Airlock, Airlock, Mailbox]:
    """Two airlocks on the same database, workspaces, store and secrets, with one shared mailbox."""
    mailbox = Mailbox()
    first = make_airlock(catalogue_url, tmp_path, notify=mailbox)
    second = Airlock(catalogue_url, workspaces_root=first.workspaces_root, store=Store(first.store.root),
                     secrets_dir=first.secrets_dir, limits=first.limits, notify=mailbox, today=first.today)
    from tre_core.db import engine_for

    # a pool of its own, as a second process has: the same URL would share the cached engine
    if catalogue_url.startswith("postgresql"):
        second.url = catalogue_url + "?application_name=replica-2"
    yield first, second, mailbox
    engine_for(second.url).dispose()


def at_once(*acts: Callable[[], object]) -> list[object]:
    """Run the acts in threads released together; each outcome is a result or the exception raised."""
    barrier, outcomes = threading.Barrier(len(acts)), [None] * len(acts)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = acts[index]()
        except Exception as error:  # noqa: BLE001 - the outcome is what the test looks at
            outcomes[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(acts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


def output_of(airlock: Airlock, request: int) -> int:
    return next(f.id for f in airlock.get("alice", request).files if f.kind == "output")


def audit_count(url: str, request: int) -> Counter:
    with session_scope(url) as session:
        return Counter(e.action for e in session.scalars(select(AuditEvent)) if e.details.get("request") == request)


def releases_of(url: str, request: int) -> list[Release]:
    with session_scope(url) as session:
        return list(session.scalars(select(Release).where(Release.request_id == request)))


def reviews_of(url: str, file_id: int) -> int:
    with session_scope(url) as session:
        return session.scalar(select(func.count()).select_from(Review).where(Review.file_id == file_id))


@on_postgresql
def test_the_same_second_approval_and_the_same_release_on_two_replicas_make_one_of_each(replicas, catalogue_url):
    first, second, mailbox = replicas
    for _ in range(ROUNDS):
        request = submitted_request(first)
        file_id = output_of(first, request)
        first.review("carol", request, {file_id: "approve"})
        reviewed = at_once(lambda: first.review("dave", request, {file_id: "approve"}),
                           lambda: second.review("dave", request, {file_id: "approve"}))
        assert [o for o in reviewed if not isinstance(o, StateConflict)] == ["reviewed"], reviewed
        conflict = next(o for o in reviewed if isinstance(o, StateConflict))
        assert "reviewed table.csv already" in str(conflict)
        released = at_once(lambda: first.release("carol", request), lambda: second.release("carol", request))
        assert ["table.csv"] in released, released
        conflict = next(o for o in released if isinstance(o, StateConflict))
        assert "released already" in str(conflict)
        counts = audit_count(catalogue_url, request)
        assert (counts["egress.reviewed"], counts["egress.approved"], counts["egress.released"]) == (2, 1, 1)
        assert reviews_of(catalogue_url, file_id) == 2
        folder = first.store.releases / str(request)
        assert release.verify_release(folder, release.public_key(first.secrets_dir)).ok
        assert (folder / "table.csv").read_text() == TABLE
        [row] = releases_of(catalogue_url, request)
        assert row.released_by == "carol" and row.record_sha256 == sha256_of(folder / release.RECORD)
    to_author = [to for to, subject in mailbox.sent if "released" in subject]
    assert to_author == [["alice@example.org"]] * ROUNDS


@on_postgresql
def test_two_checkers_reviewing_at_once_on_two_replicas_are_both_counted(replicas, catalogue_url):
    first, second, _ = replicas
    for _ in range(ROUNDS):
        request = submitted_request(first)
        file_id = output_of(first, request)
        states = at_once(lambda: first.review("carol", request, {file_id: "approve"}),
                         lambda: second.review("dave", request, {file_id: "approve"}))
        # Without the row lock both read one review, both aim at "partially_reviewed", and the
        # conditional UPDATE turns the second away: a review lost to a race.
        assert sorted(map(str, states)) == ["partially_reviewed", "reviewed"], states
        assert first.get("carol", request).state == "reviewed"
        assert reviews_of(catalogue_url, file_id) == 2
        assert audit_count(catalogue_url, request)["egress.reviewed"] == 2


@on_postgresql
def test_two_replicas_finishing_the_same_interrupted_release_at_start_release_it_once(replicas, catalogue_url):
    first, second, mailbox = replicas
    for _ in range(ROUNDS):
        request = submitted_request(first)
        file_id = output_of(first, request)
        first.review("carol", request, {file_id: "approve"})
        first.review("dave", request, {file_id: "approve"})
        first._finish_leased = lambda request_id: None  # the service dies between the approval and the copy out
        first.release("carol", request)
        del first._finish_leased
        assert first.get("alice", request).state == "approved"
        outcomes = at_once(lambda: first.finish_release(request), lambda: second.finish_release(request))
        assert sorted(outcomes, key=str) == [None, ["table.csv"]], outcomes
        counts = audit_count(catalogue_url, request)
        assert (counts["egress.approved"], counts["egress.released"]) == (1, 1)
        assert release.verify_release(first.store.releases / str(request),
                                      release.public_key(first.secrets_dir)).ok
        assert [p.name for p in first.store.releases.iterdir() if p.name.startswith(str(request))] == [str(request)]
    assert sum("released" in subject for _, subject in mailbox.sent) == ROUNDS


@on_postgresql
def test_a_release_and_a_replica_starting_meanwhile_release_once(replicas, catalogue_url):
    first, second, mailbox = replicas
    for _ in range(ROUNDS):
        request = submitted_request(first)
        file_id = output_of(first, request)
        first.review("carol", request, {file_id: "approve"})
        first.review("dave", request, {file_id: "approve"})
        outcomes = at_once(lambda: first.release("carol", request), second.resume_releases)
        assert outcomes[0] == ["table.csv"], outcomes
        # the starting replica saw the request approved (and lost the copy to the first) or not yet
        assert outcomes[1] in ([], [request]), outcomes
        counts = audit_count(catalogue_url, request)
        assert (counts["egress.approved"], counts["egress.released"]) == (1, 1)
    assert sum("released" in subject for _, subject in mailbox.sent) == ROUNDS


def test_the_database_refuses_a_second_release_of_one_request_even_without_the_lock(replicas, catalogue_url):
    """The lock is the first line; the release row, keyed by the request, is the last: a request
    put back to approved (by a bug, a hand-edited row) is not released a second time."""
    first, second, mailbox = replicas
    request = submitted_request(first)
    file_id = output_of(first, request)
    first.review("carol", request, {file_id: "approve"})
    first.review("dave", request, {file_id: "approve"})
    first.release("carol", request)
    record = first.store.releases / str(request) / release.RECORD
    written = record.stat().st_mtime_ns
    with session_scope(catalogue_url) as session:
        session.execute(update(ExportRequest).where(ExportRequest.id == request).values(state="approved"))
    assert second.finish_release(request) is None
    assert record.stat().st_mtime_ns == written  # nothing was written again
    assert audit_count(catalogue_url, request)["egress.released"] == 1
    assert len(releases_of(catalogue_url, request)) == 1
    assert sum("released" in subject for _, subject in mailbox.sent) == 1


def test_a_sweep_leaves_what_another_replica_has_just_frozen(replicas):
    first, second, _ = replicas
    request = submitted_request(first)
    in_flight = first.store.objects / ("a" * 64)  # frozen by a replica whose submission has not committed
    in_flight.write_text("a result on its way")
    writing = first.store.objects / ".tmp-otherhost-12-00"
    writing.write_text("half a copy, still being written")
    crashed = first.store.objects / ("0" * 64)
    crashed.write_text("left by a crash long ago")
    long_ago = time.time() - SWEEP_GRACE - 60
    os.utime(crashed, (long_ago, long_ago))
    ended = subprocess.Popen(["true"])
    ended.wait()  # a process of this host that has ended: its half copy is a crash's, however young
    half_copy = first.store.objects / f".tmp-{socket.gethostname()}-{ended.pid}-00"
    half_copy.write_text("half a copy by a process killed a moment ago")
    mine = first.store.objects / f".tmp-{socket.gethostname()}-{os.getpid()}-00"
    mine.write_text("being written by a live process of this host")
    assert second.sweep_store() == 2
    assert in_flight.exists() and writing.exists() and mine.exists()
    assert not crashed.exists() and not half_copy.exists()
    assert first.frozen_file("carol", request, output_of(first, request))[1].exists()


def test_replicas_creating_the_release_key_at_once_all_sign_with_one_key(tmp_path: Path):
    secrets = tmp_path / "secrets"
    keys = at_once(*[lambda: release.signing_key(secrets)] * 6)
    public = {k.public_key().public_bytes_raw() for k in keys}
    assert len(public) == 1, keys
    assert release.public_key(secrets).public_bytes_raw() in public
    assert sorted(p.name for p in secrets.iterdir()) == [release.KEY_NAME, f"{release.KEY_NAME}.pub"]
    assert (secrets / release.KEY_NAME).stat().st_mode & 0o777 == 0o600
