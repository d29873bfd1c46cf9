"""The start queue with a real hub of one start slot (TRE_CONCURRENT_STARTS=1): three people press
start at once, each waits their turn with their place shown on the spawn page, and all three get
their workspace; someone who stops before their turn leaves the line; a French browser reads its
place in French.

How a start is kept in its slot long enough to look at the line: the first workspace's container is
paused (``docker pause``) as soon as it runs, so its JupyterLab cannot open its port and its start
holds the only slot; unpausing it lets the line move. Everything else is the real path: the hub's
REST API, its progress event stream (what the spawn page reads), the audit log."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import requests
from playwright.sync_api import expect

from datasets.audit import AuditAction
from tre_core.db import session_scope
from datasets.models import AuditEvent
from tre_core.settings import TRESettings
from tests.integration.conftest import Hub, hub_xsrf, running_hub, wait_for
from tests.integration.test_browser import sign_in

pytestmark = pytest.mark.integration

PROJECT = {"alice": "cardio-risk", "erin": "cardio-risk", "bob": "diabetes-outcomes"}
WAIT = 240  # seconds: two cores shared with other runs; one start is a few seconds when quiet


@pytest.fixture(scope="module")
def one_slot_hub(docker_client) -> Iterator[Hub]:
    with running_hub(docker_client, settings={"TRE_CONCURRENT_STARTS": "1"}) as hub:
        yield hub


@pytest.fixture(scope="module")
def sessions(one_slot_hub) -> dict[str, requests.Session]:
    return {user: one_slot_hub.login(user) for user in PROJECT}


def api_headers(hub: Hub, session: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/home"}


def server(hub: Hub, session: requests.Session, user: str) -> dict:
    reply = session.get(f"{hub.url}/hub/api/users/{user}", headers=api_headers(hub, session))
    return reply.json().get("servers", {}).get(PROJECT[user], {})


class Progress:
    """A person's spawn progress stream, read in the background as the spawn page reads it."""

    def __init__(self, hub: Hub, session: requests.Session, user: str) -> None:
        self.messages: list[str] = []
        self.ended: str | None = None  # "ready" or "failed"
        url = f"{hub.url}/hub/api/users/{user}/servers/{PROJECT[user]}/progress"
        self._reply = session.get(url, headers=api_headers(hub, session), stream=True, timeout=WAIT)
        self._reply.raise_for_status()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._reply.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("message"):
                self.messages.append(event["message"])
            if event.get("ready") or event.get("failed"):
                self.ended = "ready" if event.get("ready") else "failed"
                return

    def wait_for_message(self, text: str) -> None:
        wait_for(lambda: any(text in m for m in self.messages), WAIT, f"{text!r} among {self.messages}")

    def wait_for_end(self) -> str | None:
        self._thread.join(WAIT)
        return self.ended


class StartRequest(threading.Thread):
    """Ask the hub to start the person's workspace. The API call itself waits up to the hub's
    slow_spawn_timeout, so it runs in the background; ``status`` is its HTTP status."""

    def __init__(self, hub: Hub, session: requests.Session, user: str) -> None:
        super().__init__(daemon=True)
        self.hub, self.session, self.user = hub, session, user
        self.status: int | None = None
        self.start()
        wait_for(lambda: server(hub, session, user).get("pending") == "spawn" or server(hub, session, user).get("ready"),
                 WAIT, f"{user}'s start to be under way")

    def run(self) -> None:
        self.status = self.session.post(f"{self.hub.url}/hub/api/users/{self.user}/servers/{PROJECT[self.user]}",
                                        headers=api_headers(self.hub, self.session)).status_code

    def accepted(self) -> bool:
        self.join(WAIT)
        return self.status in (201, 202)


@contextmanager
def alice_holding_the_only_slot(hub: Hub, session: requests.Session):
    """Start alice's workspace and freeze its container as soon as it runs, so that her start
    holds the hub's only slot until the block ends; then let it finish and wait until she is ready."""
    request = StartRequest(hub, session, "alice")
    container = None

    def running():
        nonlocal container
        found = hub.client.containers.list(filters={"label": [f"tre.instance={hub.instance}", "tre.user=alice"]})
        container = found[0] if found else None
        return container is not None

    wait_for(running, WAIT, "alice's container to run")
    container.pause()
    try:
        yield
    finally:
        container.unpause()
    wait_for(lambda: server(hub, session, "alice").get("ready"), WAIT, "alice's workspace to be ready")
    assert request.accepted()


def stop_all(hub: Hub, sessions: dict[str, requests.Session]) -> None:
    for user, session in sessions.items():
        if server(hub, session, user):
            reply = session.delete(f"{hub.url}/hub/api/users/{user}/servers/{PROJECT[user]}",
                                   headers=api_headers(hub, session))
            assert reply.status_code in (202, 204), reply.text
    for user, session in sessions.items():
        wait_for(lambda: not server(hub, session, user), WAIT, f"the hub to forget {user}'s server")


def audited_starts(hub: Hub, after: int = 0) -> list[tuple[int, str, float]]:
    """(seq, person, seconds waited in line) of each workspace.start row of the audit log after
    row ``after``, in order."""
    with session_scope(TRESettings(home=hub.home).catalogue_url) as db:
        rows = db.query(AuditEvent).filter(AuditEvent.action == AuditAction.WORKSPACE_START,
                                           AuditEvent.seq > after).order_by(AuditEvent.seq)
        return [(row.seq, row.actor, row.details["queued_s"]) for row in rows]


def last_audited_start(hub: Hub) -> int:
    starts = audited_starts(hub)
    return starts[-1][0] if starts else 0


def test_three_people_wait_their_turn_see_their_place_and_all_get_their_workspace(one_slot_hub, sessions):
    hub = one_slot_hub
    before = last_audited_start(hub)
    try:
        with alice_holding_the_only_slot(hub, sessions["alice"]):
            start_requests = [StartRequest(hub, sessions["erin"], "erin")]
            erin = Progress(hub, sessions["erin"], "erin")
            erin.wait_for_message("you are number 1 in the queue")
            start_requests.append(StartRequest(hub, sessions["bob"], "bob"))
            bob = Progress(hub, sessions["bob"], "bob")
            bob.wait_for_message("you are number 2 in the queue")
            assert not server(hub, sessions["bob"], "bob").get("ready")
        assert erin.wait_for_end() == "ready" and bob.wait_for_end() == "ready"
        assert all(request.accepted() for request in start_requests)
        places = [m for m in bob.messages if "queue" in m or "Starting" in m]
        assert places == ["Waiting for a free start slot: you are number 2 in the queue.",
                          "Waiting for a free start slot: you are number 1 in the queue.",
                          "Starting your workspace…"]
        assert all(server(hub, sessions[user], user).get("ready") for user in PROJECT)
        starts = audited_starts(hub, before)
        assert [person for _, person, _ in starts] == ["alice", "erin", "bob"]  # first come, first served
        waited = {person: seconds for _, person, seconds in starts}
        assert waited["bob"] > waited["erin"] > waited["alice"]  # each waited for those ahead
    finally:
        stop_all(hub, sessions)


def test_someone_who_stops_before_their_turn_leaves_the_line(one_slot_hub, sessions):
    hub = one_slot_hub
    before = last_audited_start(hub)
    try:
        with alice_holding_the_only_slot(hub, sessions["alice"]):
            StartRequest(hub, sessions["erin"], "erin")  # cancelled below: the hub answers it with an error
            Progress(hub, sessions["erin"], "erin").wait_for_message("you are number 1 in the queue")
            bob_request = StartRequest(hub, sessions["bob"], "bob")
            bob = Progress(hub, sessions["bob"], "bob")
            bob.wait_for_message("you are number 2 in the queue")
            reply = sessions["erin"].delete(f"{hub.url}/hub/api/users/erin/servers/cardio-risk",
                                            headers=api_headers(hub, sessions["erin"]))
            assert reply.status_code in (202, 204), reply.text
            # alice still holds the slot: bob moved up because erin left, not because alice finished
            bob.wait_for_message("you are number 1 in the queue")
            wait_for(lambda: not server(hub, sessions["erin"], "erin"), WAIT, "the hub to forget erin's start")
        assert bob.wait_for_end() == "ready" and bob_request.accepted()
        assert not hub.client.containers.list(all=True, filters={"label": [f"tre.instance={hub.instance}",
                                                                           "tre.user=erin"]})
        assert [person for _, person, _ in audited_starts(hub, before)] == ["alice", "bob"]
    finally:
        stop_all(hub, sessions)


def test_a_french_browser_reads_its_place_in_the_queue_in_french(one_slot_hub, sessions, open_page):
    hub = one_slot_hub
    try:
        with alice_holding_the_only_slot(hub, sessions["alice"]):
            page = open_page("fr-FR")
            sign_in(page, hub, "bob")
            page.goto(f"{hub.url}/hub/spawn/bob/diabetes-outcomes", timeout=WAIT * 1000)
            expect(page.locator("#progress-message")).to_have_text(
                re.compile("vous êtes numéro 1 dans la file d’attente"), timeout=WAIT * 1000)
        expect(page).to_have_url(re.compile(r"/user/bob/diabetes-outcomes/"), timeout=WAIT * 1000)
    finally:
        stop_all(hub, sessions)
