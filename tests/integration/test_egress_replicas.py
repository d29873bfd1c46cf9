"""More than one host's set-up on this machine: a real hub whose own database and TRE database are
both throwaway PostgreSQL databases (created here, dropped at the end), with
``TRE_DEPLOYMENT=multi-host`` and two egress review replicas: the one the hub manages and a
second real process on another port, with the same database, store, secrets and hub identity, as
a second host behind a load balancer would run.

Alice signs in and starts a workspace (the hub's state is in PostgreSQL); then, round after round,
the same second approval and the same release reach both replicas at the same instant: exactly one
of each is done, the other replica answers 409 saying it was done already (in French when asked),
and the database (reviews, the release row), the audit log and the signed release folder each
hold exactly one. A person signed in through one replica is signed in on the other."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text

from datasets import audit
from tre_core.db import engine_for, session_scope
from datasets.models import AuditEvent
from egress_review import release
from egress_review.models import Release, Review
from egress_review.store import sha256_of
from tests.integration.conftest import Hub, free_port, wait_for
from tests.integration.databases import Databases
from tests.integration.test_egress import api_token, egress_pid

pytestmark = pytest.mark.integration

PREFIX = "/services/egress/"
TABLE = "region,readmissions\n11,42\n84,37\n93,25\n"
ROUNDS = 8


class Replica:
    """A second egress review process: the managed one's environment, another port."""

    def __init__(self, hub: Hub) -> None:
        pid = egress_pid(hub)
        assert pid is not None, f"the hub's egress service is not running:\n{hub.log_tail()}"
        environ = dict(line.split("=", 1) for line in
                       Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0") if "=" in line)
        self.port = free_port()
        environ["JUPYTERHUB_SERVICE_URL"] = f"http://127.0.0.1:{self.port}"
        self.log = (hub.home / "egress-replica-2.log").open("a")
        self.process = subprocess.Popen([sys.executable, "-m", "egress_review"], env=environ, cwd=hub.home,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self.answers, 60, "the second egress replica")

    def answers(self) -> bool:
        assert self.process.poll() is None, (Path(self.log.name).read_text())[-3000:]
        try:
            return requests.get(f"http://127.0.0.1:{self.port}{PREFIX}api/openapi.json", timeout=2).ok
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


@pytest.fixture(scope="module")
def databases() -> Iterator[Databases]:
    made = Databases()
    try:
        yield made
    finally:
        made.drop()


@pytest.fixture(scope="module")
def multi_host_hub(docker_client, databases) -> Iterator[Hub]:
    hub = Hub(docker_client, scale=0.05, settings={
        "TRE_DEPLOYMENT": "multi-host", "TRE_EGRESS_REPLICAS": "2",
        "TRE_DATABASE_URL": databases.url("tre"), "TRE_HUB_DATABASE_URL": databases.url("hub")})
    try:
        outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        (outputs / "readmissions.csv").write_text(TABLE)
        hub.start_process()
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def replica_urls(multi_host_hub) -> Iterator[tuple[str, str]]:
    second = Replica(multi_host_hub)
    try:
        yield (f"http://127.0.0.1:{multi_host_hub.env['TRE_EGRESS_PORT']}{PREFIX}api/",
               f"http://127.0.0.1:{second.port}{PREFIX}api/")
    finally:
        second.stop()


def test_both_databases_on_postgresql_sign_in_and_start_a_workspace(multi_host_hub, databases):
    alice = multi_host_hub.login("alice")
    container = multi_host_hub.start(alice, "alice", "cardio-risk")
    assert container.status == "running"
    with engine_for(databases.url("hub")).connect() as connection:
        users = set(connection.scalars(text("SELECT name FROM users")))
        servers = connection.scalar(text("SELECT count(*) FROM spawners WHERE server_id IS NOT NULL"))
    assert "alice" in users and servers == 1
    assert not (multi_host_hub.home / "jupyterhub.sqlite").exists()
    assert not (multi_host_hub.home / "tre.sqlite").exists()
    multi_host_hub.stop(alice, "alice", "cardio-risk")


def at_once(*calls) -> list[requests.Response]:
    barrier, replies = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        replies[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return replies


def test_the_same_approval_and_release_on_two_replicas_at_once_happen_once(multi_host_hub, databases,
                                                                            replica_urls):
    hub = multi_host_hub
    tokens = {name: api_token(hub, hub.login(name), name) for name in ("alice", "carol", "dave")}

    def call(base: str, who: str, path: str, body: dict | None = None, language: str = "en"):
        return lambda: requests.post(f"{base}{path}", json=body or {}, timeout=120, headers={
            "Authorization": f"token {tokens[who]}", "Accept-Language": language})

    first, second = replica_urls
    for round_ in range(ROUNDS):
        language = ("en", "fr")[round_ // 2 % 2]  # each kind of round once in each language
        created = call(first, "alice", "requests", {"project": "cardio-risk", "title": f"Round {round_}"})()
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        added = call(second, "alice", f"requests/{request_id}/files", {
            "path": "outputs/readmissions.csv", "group": "Table 1", "kind": "output",
            "context": "Readmissions by region", "controls": "Counts under 10 suppressed"})()
        assert added.status_code == 201, added.text
        file_id = added.json()["file"]
        assert call(first, "alice", f"requests/{request_id}/submit")().status_code == 200
        review = {"decisions": {str(file_id): "approve"}}
        if round_ % 2:
            # Two checkers at once, one on each replica: both reviews are counted, neither is turned away.
            replies = at_once(call(first, "carol", f"requests/{request_id}/reviews", review),
                              call(second, "dave", f"requests/{request_id}/reviews", review))
            assert [r.status_code for r in replies] == [200, 200], [r.text for r in replies]
        else:
            # The same second approval reaches both replicas (a retry behind a load balancer, say).
            assert call(second, "carol", f"requests/{request_id}/reviews", review)().status_code == 200
            replies = at_once(call(first, "dave", f"requests/{request_id}/reviews", review, language),
                              call(second, "dave", f"requests/{request_id}/reviews", review, language))
            assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
            refused = next(r for r in replies if r.status_code == 409).json()["error"]
            assert ("déjà" if language == "fr" else "already") in refused, refused

        replies = at_once(call(first, "carol", f"requests/{request_id}/release", language=language),
                          call(second, "carol", f"requests/{request_id}/release", language=language))
        assert sorted(r.status_code for r in replies) == [200, 409], [r.text for r in replies]
        assert next(r for r in replies if r.status_code == 200).json()["state"] == "released"
        refused = next(r for r in replies if r.status_code == 409).json()["error"]
        assert ("déjà été publiée" if language == "fr" else "released already") in refused, refused

        with session_scope(databases.url("tre")) as session:
            assert session.scalar(select(func.count()).select_from(Review).where(Review.file_id == file_id)) == 2
            [released] = session.scalars(select(Release).where(Release.request_id == request_id)).all()
            record_sha256 = released.record_sha256
            acts = Counter(e.action for e in session.scalars(select(AuditEvent))
                           if e.details.get("request") == request_id)
        assert (acts["egress.reviewed"], acts["egress.approved"], acts["egress.released"]) == (2, 1, 1), acts
        folder = hub.home / "egress" / "releases" / str(request_id)
        assert release.verify_release(folder, release.public_key(hub.home / "secrets")).ok
        assert sha256_of(folder / release.RECORD) == record_sha256
        assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(f"{request_id}.")]  # no partial copy
    with session_scope(databases.url("tre")) as session:
        assert audit.verify(session).ok


def test_a_person_signed_in_on_one_replica_is_signed_in_on_the_other(multi_host_hub, replica_urls):
    """Behind a load balancer the next page may come from the other replica: both sign cookies
    with the one secret of the shared secrets folder, so it is served without a new sign-in."""
    alice = multi_host_hub.login("alice")
    through_proxy = alice.get(f"{multi_host_hub.url}{PREFIX}")  # the OAuth round trip, by replica one
    assert through_proxy.status_code == 200 and through_proxy.url == f"{multi_host_hub.url}{PREFIX}"
    other = replica_urls[1].removesuffix("api/")
    page = alice.get(other, allow_redirects=False)  # the cookie goes to the same host, any port
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    assert 'id="my-requests"' in page.text  # alice's requests of the rounds above, not a sign-in page
