"""The egress review through the real hub, proxy and OAuth: alice exports a table from cardio-risk
over the pages and over the JSON API with a token, carol and dave review, carol releases, alice
downloads the file whose sha256 is the reviewed one, bob and carol cannot; the service is killed
mid-submission and the hub's restart finds the request whole; the audit chain holds every act.

The tests follow one another in this module, as a request's life does."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
from bs4 import BeautifulSoup
from sqlalchemy import select

from datasets import audit
from datasets.models import AuditEvent
from tests.integration.conftest import Hub, catalogue, hub_xsrf, wait_for

pytestmark = pytest.mark.integration

PAGES = "/services/egress/"
TABLE = "region,readmissions\n11,42\n84,37\n93,25\n"
SLOW = 0.25  # seconds per MiB frozen: a window to kill the service in, for the crash test only
BIG_MIB = 40


@pytest.fixture(scope="module")
def egress_hub(docker_client):
    hub = Hub(docker_client, scale=0.05, settings={"TRE_EGRESS_TEST_SLOW_FREEZE": str(SLOW)})
    try:
        outputs = hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
        outputs.mkdir(parents=True, exist_ok=True)
        (outputs / "readmissions.csv").write_text(TABLE)
        (outputs / "by-age.csv").write_text("age,readmissions\n40-59,31\n60+,73\n")
        hub.start_process()
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="module")
def people(egress_hub):
    return {name: egress_hub.login(name) for name in ("alice", "bob", "carol", "dave")}


def page(hub: Hub, session: requests.Session, path: str = "", **params) -> requests.Response:
    reply = session.get(f"{hub.url}{PAGES}{path}", params=params)
    reply.raise_for_status()
    return reply


def soup(reply: requests.Response) -> BeautifulSoup:
    return BeautifulSoup(reply.text, "html.parser")


def post_form(hub: Hub, session: requests.Session, on: requests.Response, action: str, **data) -> requests.Response:
    """Send a form of a page with that page's XSRF token, as the browser does."""
    token = soup(on).find("input", attrs={"name": "_xsrf"})["value"]
    reply = session.post(f"{hub.url}{PAGES}{action}", data={**data, "_xsrf": token})
    assert reply.status_code == 200, f"{action}: {reply.status_code} {reply.text[:500]}"
    return reply


def api_token(hub: Hub, session: requests.Session, user: str) -> str:
    reply = session.post(f"{hub.url}/hub/api/users/{user}/tokens", json={"note": "egress test"},
                         headers={"X-XSRFToken": hub_xsrf(session), "Referer": f"{hub.url}/hub/home"})
    assert reply.status_code == 201, reply.text
    return reply.json()["token"]


def api(hub: Hub, token: str, method: str, path: str, body: dict | None = None) -> requests.Response:
    return requests.request(method, f"{hub.url}{PAGES}api/{path}", json=body,
                            headers={"Authorization": f"token {token}"}, timeout=60)



def test_alice_creates_and_submits_a_request_over_the_pages(egress_hub, people):
    alice = people["alice"]
    hub_home = soup(alice.get(f"{egress_hub.url}/hub/home"))
    assert hub_home.find(id="egress-link")["href"] == "/services/egress/"
    home = page(egress_hub, alice)
    assert soup(home).find(id="no-requests") is not None
    new = page(egress_hub, alice, "new")
    created = post_form(egress_hub, alice, new, "new", project="cardio-risk", title="Readmissions by region")
    request_id = int(created.url.rsplit("/", 1)[1])
    browse = page(egress_hub, alice, f"requests/{request_id}", folder="outputs")
    assert "outputs/readmissions.csv" in [e["data-path"] for e in soup(browse).select(".workspace-entry")]
    post_form(egress_hub, alice, browse, f"requests/{request_id}/files", path="outputs/readmissions.csv",
              group="Table 1", kind="output", context="One-year readmissions by region",
              controls="Counts under 10 suppressed; regions with fewer than 3 hospitals merged")
    draft = page(egress_hub, alice, f"requests/{request_id}")
    submitted = post_form(egress_hub, alice, draft, f"requests/{request_id}/submit")
    assert soup(submitted).find(id="request-state")["data-state"] == "submitted"
    reviewed_sha = soup(submitted).select_one(".request-file")["data-sha256"]
    assert reviewed_sha == hashlib.sha256(TABLE.encode()).hexdigest()
    # Frozen: what alice does in her workspace now changes nothing of what is reviewed.
    (egress_hub.home / "workspaces/cardio-risk/shared/outputs/readmissions.csv").write_text("region,n\n11,2\n")


def test_alice_does_the_same_over_the_api_with_a_token(egress_hub, people):
    token = api_token(egress_hub, people["alice"], "alice")
    created = api(egress_hub, token, "POST", "requests", {"project": "cardio-risk", "title": "By age"})
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    added = api(egress_hub, token, "POST", f"requests/{request_id}/files", {
        "path": "outputs/by-age.csv", "group": "Table 2", "kind": "output",
        "context": "Readmissions by age band", "controls": "Bands of at least 20 years"})
    assert added.status_code == 201, added.text
    assert api(egress_hub, token, "POST", f"requests/{request_id}/submit").json()["state"] == "submitted"
    refused = api(egress_hub, token, "POST", f"requests/{request_id}/submit")
    assert refused.status_code == 409 and "submitted" in refused.json()["error"]
    assert api(egress_hub, token, "GET", "openapi.json").json()["openapi"].startswith("3.1")


def test_carol_and_dave_review_blind_and_carol_releases(egress_hub, people):
    request_id = 1
    for checker in ("carol", "dave"):
        session = people[checker]
        queue = page(egress_hub, session, "queue")
        assert soup(queue).find(id=f"queue-{request_id}") is not None
        review = page(egress_hub, session, f"reviews/{request_id}")
        form = soup(review)
        assert [r["data-reviewer"] for r in form.select(".review")] == []  # blind: nobody else's review shows
        assert form.select_one("table.file-table td").get_text() == "region"
        decision = form.select_one("#review-form input[type=radio][value=approve]")["name"]
        post_form(egress_hub, session, review, f"requests/{request_id}/reviews", **{decision: "approve"},
                  comment="Counts are large enough.")
    review = page(egress_hub, people["carol"], f"reviews/{request_id}")
    assert {r["data-reviewer"] for r in soup(review).select(".review")} == {"carol", "dave"}
    released = post_form(egress_hub, people["carol"], review, f"requests/{request_id}/release", confirmed="yes")
    assert soup(released).find(id="request-state")["data-state"] == "released"


def test_alice_downloads_the_reviewed_file_and_no_one_else_can(egress_hub, people):
    alice = people["alice"]
    request = soup(page(egress_hub, alice, "requests/1"))
    reviewed_sha = request.select_one(".request-file")["data-sha256"]
    link = request.find(id="download-1")["href"]
    download = alice.get(f"{egress_hub.url}{link}")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    assert hashlib.sha256(download.content).hexdigest() == reviewed_sha
    assert download.text == TABLE  # the frozen table, not the one alice changed later
    assert people["bob"].get(f"{egress_hub.url}{link}").status_code == 404
    assert people["carol"].get(f"{egress_hub.url}{link}").status_code == 403
    zipped = alice.get(f"{egress_hub.url}{PAGES}requests/1/released.zip")
    assert zipped.status_code == 200 and zipped.content[:2] == b"PK"


def egress_pid(hub: Hub) -> int | None:
    """The egress service process of this hub (found by its command line and TRE_HOME)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"egress_review" in command and f"TRE_HOME={hub.home}".encode() in environ:
            return int(entry.name)
    return None


def test_a_service_killed_mid_submission_leaves_the_request_whole(egress_hub, people):
    outputs = egress_hub.home / "workspaces/cardio-risk/shared/outputs"
    (outputs / "big.csv").write_bytes(b"x,y\n" + os.urandom(BIG_MIB * 1024 * 1024 // 2).hex().encode()[:BIG_MIB * 1024 * 1024])
    token = api_token(egress_hub, people["alice"], "alice")
    request_id = api(egress_hub, token, "POST", "requests", {"project": "cardio-risk", "title": "Big"}).json()["id"]
    assert api(egress_hub, token, "POST", f"requests/{request_id}/files", {
        "path": "outputs/big.csv", "group": "G", "kind": "output", "context": "c", "controls": "k"}).status_code == 201
    store = egress_hub.home / "egress" / "store"
    before = egress_pid(egress_hub)
    assert before is not None
    submission = threading.Thread(target=lambda: _ignore(api, egress_hub, token, "POST", f"requests/{request_id}/submit"))
    submission.start()
    wait_for(lambda: any(p.name.startswith(".tmp-") for p in store.iterdir()), 30, "the freeze to start")
    os.kill(before, signal.SIGKILL)
    submission.join(60)
    wait_for(lambda: egress_pid(egress_hub) not in (None, before), 60, "the hub to restart the egress service")
    wait_for(lambda: _answers(egress_hub, token, request_id), 60, "the restarted service to answer")
    state = api(egress_hub, token, "GET", f"requests/{request_id}").json()
    assert state["state"] == "draft" and [f["sha256"] for f in state["files"]] == [None]
    assert not [p for p in store.iterdir() if p.name.startswith(".tmp-")]  # swept at start
    # Submitting again works, and freezes the whole file.
    done = api(egress_hub, token, "POST", f"requests/{request_id}/submit").json()
    assert done["state"] == "submitted"
    assert done["files"][0]["sha256"] == hashlib.sha256((outputs / "big.csv").read_bytes()).hexdigest()


def _ignore(call, *args) -> None:
    try:
        call(*args)
    except requests.RequestException:
        pass  # the service died under it: that is the point


def _answers(hub: Hub, token: str, request_id: int) -> bool:
    try:
        return api(hub, token, "GET", f"requests/{request_id}").status_code == 200
    except requests.RequestException:
        return False


def test_the_audit_chain_verifies_and_holds_every_act(egress_hub):
    with catalogue(egress_hub) as session:
        assert audit.verify(session).ok
        acts = [(e.actor, e.action, e.details.get("request")) for e in session.scalars(select(AuditEvent))
                if e.action.startswith("egress.")]
    assert ("alice", "egress.request.created", 1) in acts and ("alice", "egress.submitted", 1) in acts
    assert ("carol", "egress.reviewed", 1) in acts and ("dave", "egress.reviewed", 1) in acts
    assert ("carol", "egress.approved", 1) in acts and ("carol", "egress.released", 1) in acts
    assert ("alice", "egress.downloaded", 1) in acts and ("alice", "egress.file.added", 2) in acts
    assert [a for a in acts if a[2] == 3 and a[1] == "egress.submitted"] == [("alice", "egress.submitted", 3)]
