"""Faults injected for real into the egress review: processes killed with ``kill -9`` at an exact
point (``tre_core.faults``: the process blocks there until the test has it, no sleeps), a
PostgreSQL cluster of the test's own stopped and restarted under a running act, and a store on a
small tmpfs that fills up. Each ends with nothing lost, nothing half-released, a clear message, and
the interrupted act finished by simply doing it again.

The acts run in processes of their own (``fault_actor``: the service's ``Airlock`` over one
database, workspaces, store and secrets), the retries in this one, as another replica would."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from sqlalchemy import select

from datasets import catalogue as cat
from datasets.models import AuditEvent, Person
from datasets.schema import upgrade
from demo.commands import DEMO_CATALOGUE
from egress_review import release
from egress_review.errors import StateConflict
from egress_review.logic import Airlock
from egress_review.models import ExportRequest, Release, Review
from egress_review.store import StoreFull
from tests.conftest import make_dataset_folders
from spawner.catalogue_workspace import CatalogueUnavailable, WorkspaceRefused
from spawner.project_spawner import ProjectSpawner
from tests.integration.conftest import REPO, Hub, free_port, wait_for
from tests.integration.test_egress import api_token
from tests.integration.fault_actor import TODAY, airlock_at
from tests.integration.private_postgres import PrivatePostgres
from tre_core import faults
from tre_core.db import engine_for, session_scope

pytestmark = pytest.mark.integration

TABLE = "region,readmissions\n11,42\n84,37\n93,25\n"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    cluster = PrivatePostgres()
    try:
        yield cluster
    finally:
        cluster.close()


@dataclass
class Site:
    """One TRE's egress review: a fresh database on the private cluster, its folders, and an
    airlock in this process (the replica that retries)."""

    url: str
    root: Path
    airlock: Airlock

    def request(self, *, size: int | None = None) -> int:
        """A submitted request of alice's with one output file (``size`` bytes if given)."""
        outputs = self.root / "workspaces/cardio-risk/shared/outputs"
        name = "table.csv"
        if size:
            name = "big.csv"
            (outputs / name).write_bytes(b"n\n" + b"42\n" * ((size - 2) // 3))
        request = self.airlock.create("alice", "cardio-risk", "Readmissions by region")
        self.airlock.add_file("alice", request, f"outputs/{name}", "Table 1", "output",
                              context="Readmissions within a year, by region", controls="Counts under 10 suppressed")
        return request

    def output(self, request: int) -> int:
        return next(f.id for f in self.airlock.get("alice", request).files if f.kind == "output")

    def reviewed(self, request: int) -> int:
        self.airlock.submit("alice", request)
        file_id = self.output(request)
        for checker in ("carol", "dave"):  # a big file is row-level data to the checks: a Fail, overridden
            self.airlock.review(checker, request, {file_id: "approve"}, overrides={file_id: "synthetic, for the test"})
        return file_id

    def state(self, request: int) -> str:
        with session_scope(self.url) as session:
            return session.get(ExportRequest, request).state.value

    def audit(self, request: int) -> Counter:
        with session_scope(self.url) as session:
            return Counter(e.action for e in session.scalars(select(AuditEvent)) if e.details.get("request") == request)

    def releases(self, request: int) -> int:
        with session_scope(self.url) as session:
            return len(session.scalars(select(Release).where(Release.request_id == request)).all())

    def released_whole(self, request: int) -> bool:
        folder = self.airlock.store.releases / str(request)
        return release.verify_release(folder, release.public_key(self.root / "secrets")).ok


def new_database(postgres: PrivatePostgres, prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    with engine_for(postgres.url()).execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    return postgres.url(name)


def make_site(postgres: PrivatePostgres) -> Site:
    """A fresh TRE on the private cluster: the demo catalogue, alice's table in cardio-risk."""
    url = new_database(postgres, "tre_faults")
    root = Path(tempfile.mkdtemp(prefix="tre-faults-"))
    upgrade(url)
    make_dataset_folders(root / "data")
    with session_scope(url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), root / "data")
        session.get(Person, "erin").checker_accredited_until = TODAY.replace(year=2027)
    outputs = root / "workspaces/cardio-risk/shared/outputs"
    outputs.mkdir(parents=True)
    (outputs / "table.csv").write_text(TABLE)
    return Site(url, root, airlock_at(url, root))


def close_site(site: Site) -> None:
    engine_for(site.url).dispose()
    subprocess.run(["umount", "-l", str(site.root / "egress")], capture_output=True)  # a small store, if made
    subprocess.run(["rm", "-rf", str(site.root)], check=False)


@pytest.fixture
def site(postgres) -> Iterator[Site]:
    made = make_site(postgres)
    try:
        yield made
    finally:
        close_site(made)


class Actor:
    """An act in a process of its own, armed to stop at ``point`` (if given)."""

    def __init__(self, site: Site, act: str, *args: object, point: str | None = None) -> None:
        self.fifos: Path | None = None
        env = dict(os.environ)
        if point:
            self.fifos = Path(tempfile.mkdtemp(prefix="tre-fault-fifo-"))
            self.pipe = faults.fifo_for(self.fifos, point)
            env.update({faults.POINT_VARIABLE: point, faults.FIFOS_VARIABLE: str(self.fifos)})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.fault_actor", site.url, str(site.root), act, *map(str, args)],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.held: int | None = None

    def reach(self, timeout: float = 120) -> None:
        """Return once the process is blocked at its point (its end of the pipe is open)."""
        deadline = time.monotonic() + timeout
        while self.held is None:
            try:
                self.held = os.open(self.pipe, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                if error.errno != errno.ENXIO:  # ENXIO: nobody reading yet
                    raise
                if self.process.poll() is not None:
                    raise AssertionError(f"the act ended before its fault point: {self.process.communicate()}")
                assert time.monotonic() < deadline, "the act never reached its fault point"
                time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no handler runs, no transaction commits; the kernel closes its sockets."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._close()

    def go_on(self) -> dict:
        os.write(self.held, b"go\n")
        self._close()
        return self.outcome()

    def outcome(self) -> dict:
        out, err = self.process.communicate(timeout=120)
        self._close()
        assert out.strip(), err[-3000:]
        return json.loads(out.strip().splitlines()[-1])

    def _close(self) -> None:
        if self.held is not None:
            os.close(self.held)
            self.held = None
        if self.fifos is not None:
            shutil.rmtree(self.fifos, ignore_errors=True)
            self.fifos = None


# --- a release killed, then retried -----------------------------------------------------------------------------

@pytest.mark.parametrize("point", ["release.approved", "release.copy", "release.renamed", "release.before_commit"])
def test_a_release_killed_anywhere_is_finished_by_a_retry_and_released_once(site, point):
    request = site.request()
    site.reviewed(request)
    copier = Actor(site, "release", "carol", request, point=point)
    copier.reach()
    copier.kill()
    assert site.state(request) == "approved" and site.releases(request) == 0
    # Before: "released already", and only a restart of the service finished it.
    assert site.airlock.release("dave", request) == ["table.csv"]
    assert site.state(request) == "released" and site.releases(request) == 1
    assert site.released_whole(request)
    assert not [p for p in site.airlock.store.releases.iterdir() if p.name.endswith(".partial")]
    counts = site.audit(request)
    assert (counts["egress.approved"], counts["egress.release.retried"], counts["egress.released"]) == (1, 1, 1)
    with pytest.raises(StateConflict, match="released already"):
        site.airlock.release("carol", request)


def test_a_retry_while_a_live_process_copies_is_refused_and_the_copy_ends_once(site):
    """The control of the test above: the same retry, with the copier alive, does not copy."""
    request = site.request()
    site.reviewed(request)
    copier = Actor(site, "release", "carol", request, point="release.copy")
    copier.reach()
    site.airlock.release_wait = 0.5
    with pytest.raises(StateConflict, match="being released right now") as refused:
        site.airlock.release("dave", request)
    assert "en cours de publication" in refused.value.args[0].said_in("fr")
    assert copier.go_on() == {"ok": ["table.csv"]}
    assert site.releases(request) == 1 and site.released_whole(request)
    assert site.audit(request)["egress.release.retried"] == 0


def test_a_release_killed_mid_copy_is_finished_by_the_next_start_too(site):
    request = site.request()
    site.reviewed(request)
    copier = Actor(site, "release", "carol", request, point="release.copy")
    copier.reach()
    copier.kill()
    restarted = Actor(site, "resume").outcome()
    assert restarted["ok"]["resumed"] == [request]
    assert site.state(request) == "released" and site.releases(request) == 1 and site.released_whole(request)


# --- a submission and a review killed --------------------------------------------------------------------------

def test_a_submission_killed_mid_freeze_leaves_a_draft_and_its_half_copy_is_swept(site):
    request = site.request(size=3 * 1024**2)
    freezer = Actor(site, "submit", "alice", request, point="freeze.copy")
    freezer.reach()
    half = [p for p in site.airlock.store.objects.iterdir() if p.name.startswith(".tmp-")]
    assert len(half) == 1
    freezer.kill()
    assert site.state(request) == "draft"
    assert [f.sha256 for f in site.airlock.get("alice", request).files] == [None]
    assert Actor(site, "resume").outcome()["ok"]["swept"] == 1  # its writer is gone: swept at once
    assert not half[0].exists()
    assert site.airlock.submit("alice", request) == "submitted"


def test_a_review_killed_before_its_commit_is_not_counted_and_can_be_sent_again(site):
    request = site.request()
    site.airlock.submit("alice", request)
    file_id = site.output(request)
    reviewer = Actor(site, "review", "carol", request, file_id, point="review.before_commit")
    reviewer.reach()
    reviewer.kill()
    with session_scope(site.url) as session:
        assert session.scalars(select(Review).where(Review.file_id == file_id)).all() == []
    assert site.airlock.review("carol", request, {file_id: "approve"}) == "partially_reviewed"
    assert site.audit(request)["egress.reviewed"] == 1


# --- PostgreSQL restarted and stopped --------------------------------------------------------------------------

def test_postgresql_restarted_between_the_freeze_and_the_commit_the_submission_still_commits(site, postgres):
    request = site.request()
    submitter = Actor(site, "submit", "alice", request, point="submission.frozen")
    submitter.reach()
    postgres.restart()  # every connection the process holds in its pool is now dead
    assert submitter.go_on() == {"ok": "submitted"}
    [frozen] = site.airlock.get("alice", request).files
    assert frozen.sha256 and site.airlock.store.path_of(frozen.sha256).exists()


def test_postgresql_restarted_inside_a_transaction_loses_it_whole_and_the_act_can_be_redone(site, postgres):
    request = site.request()
    site.airlock.submit("alice", request)
    file_id = site.output(request)
    reviewer = Actor(site, "review", "carol", request, file_id, point="review.before_commit")
    reviewer.reach()
    postgres.restart()
    outcome = reviewer.go_on()
    assert outcome["error"] == "OperationalError", outcome  # the service answers 503 (site.DATABASE_UNREACHABLE)
    assert site.state(request) == "submitted" and site.audit(request)["egress.reviewed"] == 0
    assert site.airlock.review("carol", request, {file_id: "approve"}) == "partially_reviewed"


def test_postgresql_down_a_release_is_refused_whole_and_done_once_it_is_back(site, postgres):
    request = site.request()
    site.reviewed(request)
    postgres.stop()
    try:
        outcome = Actor(site, "release", "carol", request).outcome()
    finally:
        postgres.start()
    assert outcome["error"] == "OperationalError", outcome
    assert site.state(request) == "reviewed" and site.releases(request) == 0
    assert not (site.airlock.store.releases / str(request)).exists()
    assert site.airlock.release("carol", request) == ["table.csv"] and site.released_whole(request)


# --- the store's disk full ------------------------------------------------------------------------------------

def small_store(site: Site, size: str = "4m") -> Path:
    """The egress store on a tmpfs of ``size``, made before the airlock writes anything there."""
    folder = site.root / "egress"
    folder.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], check=True)
    site.airlock = airlock_at(site.url, site.root)
    return folder


def fill(folder: Path, leave: int) -> Path:
    """A file taking all but ``leave`` bytes of the filesystem."""
    info = os.statvfs(folder)
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, info.f_bavail * info.f_frsize - leave))
    return filler


def test_the_store_full_during_a_freeze_loses_nothing_and_says_so(site):
    folder = small_store(site)
    request = site.request(size=2 * 1024**2)
    filler = fill(folder, 512 * 1024)
    before = sorted(p.name for p in site.airlock.store.objects.iterdir())
    with pytest.raises(StoreFull) as full:
        site.airlock.submit("alice", request)
    message = full.value.args[0]
    assert "disk is full" in message and "submit it again" in message
    assert "disque du magasin de sortie est plein" in message.said_in("fr")
    assert site.state(request) == "draft"
    assert sorted(p.name for p in site.airlock.store.objects.iterdir()) == before  # no half copy left
    filler.unlink()  # the operators make room
    assert site.airlock.submit("alice", request) == "submitted"


def test_the_store_full_during_a_release_keeps_it_approved_and_a_retry_releases_it(site):
    folder = small_store(site, "8m")
    request = site.request(size=2 * 1024**2)
    site.reviewed(request)
    filler = fill(folder, 512 * 1024)
    with pytest.raises(StoreFull) as full:
        site.airlock.release("carol", request)
    assert "stays approved" in full.value.args[0]
    assert site.state(request) == "approved" and site.releases(request) == 0
    assert [p.name for p in site.airlock.store.releases.iterdir()] == []  # no partial folder
    filler.unlink()
    assert site.airlock.release("carol", request) == ["big.csv"] and site.released_whole(request)
    assert site.audit(request)["egress.release.retried"] == 1


# --- the catalogue database down under a running hub -------------------------------------------------------------

def test_a_start_while_the_catalogue_is_down_is_a_503_in_words_and_after_its_restart_goes_on(site, postgres):
    """The spawner's own catalogue read, against the private cluster stopped then started again."""
    spawner = ProjectSpawner(catalogue_url=site.url, data_root=str(site.root / "data"),
                             workspaces_root=str(site.root / "workspaces"),
                             orm_spawner=SimpleNamespace(name="cardio-risk", server=None))
    spawner.user = SimpleNamespace(name="alice")
    spawner.handler = SimpleNamespace(request=SimpleNamespace(headers={"Accept-Language": "fr"}))
    # The database up: past the catalogue, refused for what it says (no image registered for the
    # project here), a 403; this also leaves connections in the pool that the stop below kills.
    with pytest.raises(WorkspaceRefused) as refused:
        asyncio.run(spawner.planned_workspace())
    assert refused.value.status_code == 403
    postgres.stop()
    try:
        with pytest.raises(CatalogueUnavailable) as unreachable:
            asyncio.run(spawner.planned_workspace())
    finally:
        postgres.start()
    assert unreachable.value.status_code == 503
    assert "catalogue de la TRE est injoignable" in unreachable.value.jupyterhub_message
    # Restarted: the same start gets past the catalogue again on fresh connections, not a 503.
    with pytest.raises(WorkspaceRefused) as refused:
        asyncio.run(spawner.planned_workspace())
    assert refused.value.status_code == 403


@pytest.fixture(scope="module")
def hub_on_private_postgres(docker_client, postgres) -> Iterator[Hub]:
    """A hub whose TRE database (catalogue, audit, egress) is on the private cluster; its own
    database stays SQLite, so the hub itself keeps answering while the catalogue is down."""
    hub = Hub(docker_client, scale=0.05, settings={"TRE_RECONCILE_INTERVAL": "2", "TRE_EGRESS_REPLICAS": "2",
                                                   "TRE_DATABASE_URL": new_database(postgres, "tre_faults_hub")})
    try:
        outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        (outputs / "readmissions.csv").write_text(TABLE)
        hub.start_process(timeout=240)  # the shared 2-core machine can take minutes to start one
        yield hub
    finally:
        hub.close()


def service_pid(hub: Hub, module: bytes) -> int | None:
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, NotADirectoryError):
            continue
        if module in command and f"TRE_HOME={hub.home}".encode() in environ:
            return int(entry.name)
    return None


class ArmedReplica:
    """A second egress service process (the hub's managed one's environment, another port), armed
    to stop at ``point``: the one the test kills, since the hub would restart its own."""

    def __init__(self, hub: Hub, point: str) -> None:
        pid = service_pid(hub, b"egress_review")
        assert pid is not None, hub.log_tail()
        environ = dict(line.split("=", 1) for line in
                       Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in line)
        self.port = free_port()
        self.fifos = Path(tempfile.mkdtemp(prefix="tre-fault-fifo-"))
        self.pipe = faults.fifo_for(self.fifos, point)
        environ.update({"JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{self.port}",
                        faults.POINT_VARIABLE: point, faults.FIFOS_VARIABLE: str(self.fifos)})
        self.log = (hub.home / "egress-armed.log").open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "egress_review"], env=environ, cwd=hub.home,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.api = f"http://127.0.0.1:{self.port}/services/egress/api/"
        wait_for(self.answers, 120, "the armed egress replica")

    def answers(self) -> bool:
        assert self.process.poll() is None, Path(self.log.name).read_text()[-3000:]
        try:
            return requests.get(f"{self.api}openapi.json", timeout=2).ok
        except requests.ConnectionError:
            return False

    def kill_at_point(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                held = os.open(self.pipe, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as error:
                if error.errno != errno.ENXIO:
                    raise
                assert self.process.poll() is None and time.monotonic() < deadline, "never reached its point"
                time.sleep(0.05)
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.close(held)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()
        for pipe in self.fifos.iterdir():
            pipe.unlink()
        self.fifos.rmdir()


def test_the_egress_service_killed_mid_release_over_http_a_retry_on_the_other_replica_finishes_it(
        hub_on_private_postgres):
    hub = hub_on_private_postgres
    tokens = {name: api_token(hub, hub.login(name), name) for name in ("alice", "carol", "dave")}

    def call(base: str, who: str, path: str, body: dict | None = None, language: str = "en") -> requests.Response:
        return requests.post(f"{base}{path}", json=body or {}, timeout=120, headers={
            "Authorization": f"token {tokens[who]}", "Accept-Language": language})

    managed = f"{hub.url}/services/egress/api/"
    request = call(managed, "alice", "requests", {"project": "cardio-risk", "title": "Killed mid-release"}).json()["id"]
    file_id = call(managed, "alice", f"requests/{request}/files", {
        "path": "outputs/readmissions.csv", "group": "Table 1", "kind": "output",
        "context": "Readmissions by region", "controls": "Counts under 10 suppressed"}).json()["file"]
    assert call(managed, "alice", f"requests/{request}/submit").json()["state"] == "submitted"
    for checker in ("carol", "dave"):
        assert call(managed, checker, f"requests/{request}/reviews",
                    {"decisions": {str(file_id): "approve"}}).status_code == 200
    armed = ArmedReplica(hub, "release.copy")
    try:
        cut = threading.Thread(target=lambda: _ignore(call, armed.api, "carol", f"requests/{request}/release"))
        cut.start()
        armed.kill_at_point()
        cut.join(60)
    finally:
        armed.close()
    seen = requests.get(f"{managed}requests/{request}", headers={"Authorization": f"token {tokens['alice']}"},
                        timeout=60).json()
    assert seen["state"] == "approved"
    retried = call(managed, "dave", f"requests/{request}/release", language="fr")
    assert retried.status_code == 200 and retried.json()["state"] == "released", retried.text
    again = call(managed, "carol", f"requests/{request}/release", language="fr")
    assert again.status_code == 409 and "déjà été publiée" in again.json()["error"]
    with session_scope(hub.env["TRE_DATABASE_URL"]) as session:  # the private cluster, not the hub's default
        acts = Counter(e.action for e in session.scalars(select(AuditEvent)) if e.details.get("request") == request)
        assert len(session.scalars(select(Release).where(Release.request_id == request)).all()) == 1
    assert (acts["egress.approved"], acts["egress.release.retried"], acts["egress.released"]) == (1, 1, 1)
    folder = hub.home / "egress" / "releases" / str(request)
    assert release.verify_release(folder, release.public_key(hub.home / "secrets")).ok


def _ignore(call, *args) -> None:
    try:
        call(*args)
    except requests.RequestException:
        pass  # the service died under it: that is the point


def test_the_catalogue_down_the_reconciler_lives_on_stops_nothing_and_a_start_says_503(hub_on_private_postgres,
                                                                                       postgres):
    hub = hub_on_private_postgres
    alice, bob = hub.login("alice"), hub.login("bob", "fr")
    container = hub.start(alice, "alice", "cardio-risk")
    reconciler = service_pid(hub, b"hub.reconciler")
    assert reconciler is not None, hub.log_tail()
    failed_passes = (hub.home / "hub.log").read_text().count("pass failed")
    postgres.stop()
    try:
        wait_for(lambda: (hub.home / "hub.log").read_text().count("pass failed") > failed_passes + 1, 60,
                 "two reconciler passes with the database down")
        reply = hub.press_start(bob, "bob", "diabetes-outcomes")
        assert reply.status_code == 503, reply.text[-2000:]
        assert "catalogue de la TRE est injoignable" in reply.text
        assert service_pid(hub, b"hub.reconciler") == reconciler  # the same process: it never died
        container.reload()
        assert container.status == "running"  # an outage is not a revocation
    finally:
        postgres.start()
    # Back: the same reconciler enforces the catalogue again.
    hub.tre("projects", "revoke", "cardio-risk", "claims", "--as", "steward")
    wait_for(lambda: not hub.client.containers.list(filters={"id": container.id}), 90, "alice's workspace stopped")
    assert service_pid(hub, b"hub.reconciler") == reconciler
