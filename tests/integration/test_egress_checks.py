"""The automatic disclosure checks through the real hub: alice submits a table with a small cell and
an output holding a patient id from a dataset cardio-risk is granted; on carol's review page the
small cell is highlighted by the threshold rule and the second file fails identifier-leak; with a
French Accept-Language the same page says the verdicts in French."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from bs4 import BeautifulSoup

from tests.integration.conftest import Hub, running_hub
from tests.integration.test_egress import PAGES, api, api_token

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def checks_hub(docker_client):
    with running_hub(docker_client, scale=0.05) as hub:
        yield hub


def a_patient_id(hub: Hub) -> str:
    """A real identifier of the demo's claims dataset, granted to cardio-risk."""
    path = next((hub.home / "data" / "claims").rglob("*.parquet"))
    return str(pq.read_table(path, columns=["patient_id"]).column("patient_id")[0])


def test_a_small_cell_is_highlighted_and_a_patient_id_fails(checks_hub):
    outputs = checks_hub.home / "workspaces" / "cardio-risk" / "shared" / "outputs"
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "small.csv").write_text("region,readmissions\n11,4\n84,37\n")
    patient = a_patient_id(checks_hub)
    (outputs / "top.csv").write_text(f"patient,stays\n{patient},12\n")
    alice, carol = checks_hub.login("alice"), checks_hub.login("carol")
    token = api_token(checks_hub, alice, "alice")
    request_id = api(checks_hub, token, "POST", "requests", {"project": "cardio-risk", "title": "Checks"}).json()["id"]
    for name in ("small.csv", "top.csv"):
        added = api(checks_hub, token, "POST", f"requests/{request_id}/files", {
            "path": f"outputs/{name}", "group": "Tables", "kind": "output",
            "context": "Readmissions", "controls": "none"})
        assert added.status_code == 201, added.text
    assert api(checks_hub, token, "POST", f"requests/{request_id}/submit").json()["state"] == "submitted"

    review = carol.get(f"{checks_hub.url}{PAGES}reviews/{request_id}")
    assert review.status_code == 200, review.text[:500]
    page = BeautifulSoup(review.text, "html.parser")
    files = {a["data-name"]: a for a in page.select(".review-file")}
    small, top = files["small.csv"], files["top.csv"]
    assert small.select_one(".check-outcome")["data-outcome"] == "fail"
    flagged = small.select("td.check-flagged")
    assert [(td["data-row"], td["data-col"], td.get_text()) for td in flagged] == [("1", "1", "4")]
    assert "threshold" in flagged[0]["data-rules"].split()
    assert small.select_one(".check-legend") is not None
    assert top.select_one(".check-outcome")["data-outcome"] == "fail"
    leak = top.select_one('li[data-rule="identifier-leak"]')
    assert leak["data-status"] == "fail"
    assert [(td["data-row"], td["data-col"]) for td in top.select("td.check-flagged")] == [("1", "0")]

    # The same page for a French-speaking checker: the verdicts are said in French.
    french = BeautifulSoup(carol.get(f"{checks_hub.url}{PAGES}reviews/{request_id}",
                                     headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).text, "html.parser")
    small = next(a for a in french.select(".review-file") if a["data-name"] == "small.csv")
    assert small.select_one(".check-outcome").get_text() == "Non conforme"
    assert small.select_one('li[data-rule="threshold"] .check-summary').get_text() == (
        "1 cellule(s) ont un effectif inférieur à 10 (effectif minimal) : supprimez-les ou regroupez des modalités.")

    # A Fail is final unless carol overrides it in writing: her review without a reason is refused
    # with a message, with one it is recorded and the reason kept with her approval.
    english = BeautifulSoup(review.text, "html.parser")
    ids = {a["data-name"]: a["id"].removeprefix("review-file-") for a in english.select(".review-file")}
    assert english.find(id=f"override-{ids['small.csv']}") is not None
    xsrf = english.find("input", attrs={"name": "_xsrf"})["value"]
    decisions = {f"decision-{i}": "approve" for i in ids.values()}
    refused = carol.post(f"{checks_hub.url}{PAGES}requests/{request_id}/reviews", allow_redirects=False,
                         data={**decisions, "_xsrf": xsrf})
    assert refused.status_code == 400 and "a Fail is final unless you override it" in refused.text
    reasons = {f"override-{i}": f"{name}: checked by hand, safe." for name, i in ids.items()}
    sent = carol.post(f"{checks_hub.url}{PAGES}requests/{request_id}/reviews", allow_redirects=False,
                      data={**decisions, **reasons, "_xsrf": xsrf})
    assert sent.status_code == 303, sent.text[:500]
    mine = api(checks_hub, api_token(checks_hub, carol, "carol"), "GET", f"requests/{request_id}").json()
    assert mine["state"] == "partially_reviewed"
    assert {f["name"]: f["reviews"][0]["override"] for f in mine["files"]} == {
        "small.csv": "small.csv: checked by hand, safe.", "top.csv": "top.csv: checked by hand, safe."}
