"""Issue 19, item 5, through the real hub and catalogue pages: a data steward records a researcher's
accreditation on the stewards' page (audited); a researcher whose accreditation has lapsed is refused
a workspace start with a message naming the data stewards, in the browser's language; a person who
is not a steward can neither see the page nor post its form."""

from __future__ import annotations

import json

import pytest
import requests
from bs4 import BeautifulSoup

from tests.integration.conftest import Hub, running_hub

pytestmark = pytest.mark.integration

PAGES = "/services/catalogue/"


@pytest.fixture(scope="module")
def pages_hub(docker_client):
    with running_hub(docker_client, scale=0.05) as hub:
        yield hub


def soup(reply: requests.Response) -> BeautifulSoup:
    return BeautifulSoup(reply.text, "html.parser")


def record(hub: Hub, steward: requests.Session, username: str, trained_on: str, until: str) -> requests.Response:
    page = steward.get(f"{hub.url}{PAGES}steward/accreditations")
    form = soup(page).find("form", id=f"accredit-{username}")
    return steward.post(f"{hub.url}{form['action']}", data={
        "_xsrf": form.find("input", attrs={"name": "_xsrf"})["value"], "trained_on": trained_on, "until": until})


def test_bob_can_neither_see_nor_post_the_accreditations(pages_hub):
    bob = pages_hub.login("bob")
    reply = bob.get(f"{pages_hub.url}{PAGES}steward/accreditations")
    assert reply.status_code == 403 and "bob, who is not a data steward" in reply.text
    xsrf = soup(bob.get(f"{pages_hub.url}{PAGES}apply")).find("input", attrs={"name": "_xsrf"})["value"]
    forged = bob.post(f"{pages_hub.url}{PAGES}steward/accreditations/bob", data={
        "_xsrf": xsrf, "trained_on": "2026-01-01", "until": "2030-01-01"})
    assert forged.status_code == 403
    assert "accreditation.recorded" not in pages_hub.tre("audit", "export")


def test_a_lapsed_accreditation_refuses_the_start_in_english_and_french(pages_hub):
    steward = pages_hub.login("steward")
    page = soup(steward.get(f"{pages_hub.url}{PAGES}steward/accreditations"))
    assert page.find("tr", id="accreditation-alice")["data-state"] == "valid"
    bad = record(pages_hub, steward, "alice", "2024-01-01", "not a date")
    assert bad.status_code == 400 and "Give both dates" in soup(bad).find(id="problem-alice").get_text()
    for username in ("alice", "erin"):
        reply = record(pages_hub, steward, username, "2023-01-10", "2024-01-09")
        assert reply.status_code == 200 and reply.url.endswith(f"steward/accreditations?recorded={username}")
        assert soup(reply).find("tr", id=f"accreditation-{username}")["data-state"] == "expired"
    rows = [json.loads(line) for line in pages_hub.tre("audit", "export").splitlines()]
    assert [(r["actor"], r["details"]["username"], r["details"]["until"]) for r in rows
            if r["action"] == "accreditation.recorded"] == [("steward", "alice", "2024-01-09"),
                                                            ("steward", "erin", "2024-01-09")]

    alice = pages_hub.login("alice")
    reply = alice.get(f"{pages_hub.url}/hub/spawn/alice/cardio-risk")
    assert reply.status_code == 403, pages_hub.log_tail(80)
    assert "Your researcher accreditation ended on 2024-01-09" in reply.text and "Sam Steward" in reply.text
    erin = pages_hub.login("erin", language="fr")
    reply = erin.get(f"{pages_hub.url}/hub/spawn/erin/cardio-risk")
    assert reply.status_code == 403
    assert "Votre habilitation de chercheur a pris fin le 2024-01-09" in reply.text
    assert not pages_hub.client.containers.list(filters={"label": [f"tre.instance={pages_hub.instance}",
                                                                    "tre.project=cardio-risk"]})
