"""How long the egress review takes to recover from each fault the tests inject, median of N.

    .venv/bin/python benchmarks/faults.py [--rounds 3] [--size-mib 4]

The faults are those of tests/integration/test_faults.py, on the same pieces: a PostgreSQL
cluster of this run's own (``pg_ctl`` in a temp folder; the shared one is never touched), the
service's ``Airlock`` in processes killed with ``kill -9`` at a named point, and a small tmpfs
store filled up. Recovery is timed from the moment the fault has happened (the process is dead, the
database restarted, room made) to the moment the interrupted act is done, everything checked: the
release verified, one release row, the digests recorded. The output file is ``--size-mib`` MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egress_review.store import StoreFull  # noqa: E402
from spawner.catalogue_workspace import CatalogueUnavailable  # noqa: E402
from spawner.project_spawner import ProjectSpawner  # noqa: E402
from tests.integration.private_postgres import PrivatePostgres  # noqa: E402
from tests.integration.test_faults import Actor, Site, close_site, fill, make_site, small_store  # noqa: E402
from tre_core.db import engine_for  # noqa: E402


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def reviewed(site: Site, size: int) -> int:
    request = site.request(size=size)
    site.reviewed(request)
    return request


def release_killed_then_retried(site: Site, size: int, _: PrivatePostgres) -> float:
    request = reviewed(site, size)
    copier = Actor(site, "release", "carol", request, point="release.copy")
    copier.reach()
    copier.kill()
    seconds = timed(lambda: site.airlock.release("dave", request))
    assert site.released_whole(request) and site.releases(request) == 1
    return seconds


def release_killed_then_restart(site: Site, size: int, _: PrivatePostgres) -> float:
    request = reviewed(site, size)
    copier = Actor(site, "release", "carol", request, point="release.copy")
    copier.reach()
    copier.kill()
    seconds = timed(lambda: Actor(site, "resume").outcome())  # a new process: the service's start
    assert site.released_whole(request) and site.releases(request) == 1
    return seconds


def submission_killed_then_swept_and_resubmitted(site: Site, size: int, _: PrivatePostgres) -> float:
    request = site.request(size=size)
    freezer = Actor(site, "submit", "alice", request, point="freeze.copy")
    freezer.reach()
    freezer.kill()

    def recover() -> None:
        assert Actor(site, "resume").outcome()["ok"]["swept"] == 1
        assert site.airlock.submit("alice", request) == "submitted"
    return timed(recover)


def review_killed_then_sent_again(site: Site, _size: int, _: PrivatePostgres) -> float:
    request = site.request()
    site.airlock.submit("alice", request)
    file_id = site.output(request)
    reviewer = Actor(site, "review", "carol", request, file_id, point="review.before_commit")
    reviewer.reach()
    reviewer.kill()
    return timed(lambda: site.airlock.review("carol", request, {file_id: "approve"}))


def postgres_restarted_mid_submission(site: Site, size: int, postgres: PrivatePostgres) -> float:
    request = site.request(size=size)
    submitter = Actor(site, "submit", "alice", request, point="submission.frozen")
    submitter.reach()

    def recover() -> None:
        postgres.restart()
        assert submitter.go_on() == {"ok": "submitted"}
    return timed(recover)  # the restart itself included


def postgres_restarted_mid_review(site: Site, _size: int, postgres: PrivatePostgres) -> float:
    request = site.request()
    site.airlock.submit("alice", request)
    file_id = site.output(request)
    reviewer = Actor(site, "review", "carol", request, file_id, point="review.before_commit")
    reviewer.reach()

    def recover() -> None:
        postgres.restart()
        assert reviewer.go_on()["error"] == "OperationalError"
        site.airlock.review("carol", request, {file_id: "approve"})
    return timed(recover)


def store_full_then_room_made(site: Site, size: int, _: PrivatePostgres) -> float:
    folder = small_store(site, f"{size * 2 // 1024**2 + 2}m")
    request = site.request(size=size)
    filler = fill(folder, 512 * 1024)
    try:
        site.airlock.submit("alice", request)
        raise AssertionError("the full store accepted the file")
    except StoreFull:
        pass
    filler.unlink()
    return timed(lambda: site.airlock.submit("alice", request))


def start_while_catalogue_down(site: Site, _size: int, postgres: PrivatePostgres) -> float:
    """Not a recovery: how fast a start is told 503 while the database is down (no hang)."""
    spawner = ProjectSpawner(catalogue_url=site.url, orm_spawner=SimpleNamespace(name="cardio-risk", server=None))
    spawner.user = SimpleNamespace(name="alice")
    engine_for(site.url).dispose()
    postgres.stop()
    try:
        start = time.perf_counter()
        try:
            asyncio.run(spawner.planned_workspace())
        except CatalogueUnavailable:
            return time.perf_counter() - start
        raise AssertionError("a start went through with the catalogue down")
    finally:
        postgres.start()


FAULTS = {
    "release killed mid-copy, finished by a retry": release_killed_then_retried,
    "release killed mid-copy, finished by a restart": release_killed_then_restart,
    "submission killed mid-freeze, swept and submitted again": submission_killed_then_swept_and_resubmitted,
    "review killed before its commit, sent again": review_killed_then_sent_again,
    "PostgreSQL restarted between freeze and commit (restart included)": postgres_restarted_mid_submission,
    "PostgreSQL restarted inside a review's transaction, redone (restart included)": postgres_restarted_mid_review,
    "store full during a freeze, submitted again once room is made": store_full_then_room_made,
    "catalogue down: a start answered 503": start_while_catalogue_down,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=4)
    args = parser.parse_args()
    size = args.size_mib * 1024**2
    postgres = PrivatePostgres()
    try:
        print(f"{'fault':<80} {'median s':>9}  (each of {args.rounds})")
        for name, fault in FAULTS.items():
            seconds = []
            for _ in range(args.rounds):
                site = make_site(postgres)
                try:
                    seconds.append(fault(site, size, postgres))
                finally:
                    close_site(site)
            print(f"{name:<80} {statistics.median(seconds):>9.3f}  ({', '.join(f'{s:.3f}' for s in seconds)})",
                  flush=True)
    finally:
        postgres.close()


if __name__ == "__main__":
    main()
