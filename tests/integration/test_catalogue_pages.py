"""The catalogue pages, driven as people use them, through the real hub, proxy and OAuth: alice
applies for a project, asking for two variables of hospital stays over one year, a French browser
reads French, bob is kept out of the stewards' queue, the steward amends the variables (a wrong
amendment is refused and changes nothing) and approves from it, alice starts the new project's
workspace and finds exactly its dataset, and the public register shows the project with the
variables and period granted, without login and without anybody's name.

The tests follow one another in this module, as the application's life does."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import requests
from bs4 import BeautifulSoup

from datasets.models import AuditEvent, Dataset, Person, Project, ProjectStatus
from tests.integration.conftest import Hub, catalogue, running_hub

pytestmark = pytest.mark.integration

PAGES = "/services/catalogue/"
SLUG = "stroke-care"
TODAY = dt.date.today()
APPLICATION = {
    "slug": SLUG,
    "title": "Rehabilitation after a stroke",
    "lay_summary": "How patients recover in the year after a hospital stay for a stroke.",
    "purpose": "Describe rehabilitation pathways after an acute stroke, by region.",
    "public_interest": "Fairer access to rehabilitation across regions.",
    "datasets": ["hospital_stays"],
    "period_from:hospital_stays": "2022-01-01",
    "period_until:hospital_stays": "2022-12-31",
    "members": "erin",
    "starts_on": TODAY.isoformat(),
    "ends_on": (TODAY + dt.timedelta(days=365)).isoformat(),
}


@pytest.fixture(scope="module")
def pages_hub(docker_client):
    with running_hub(docker_client, scale=0.05) as hub:
        yield hub



def get(hub: Hub, session: requests.Session, path: str = "") -> requests.Response:
    """Open a catalogue page; the first visit goes through the hub's OAuth, as a browser's does."""
    return session.get(f"{hub.url}{PAGES}{path}")


def soup(reply: requests.Response) -> BeautifulSoup:
    return BeautifulSoup(reply.text, "html.parser")


def post_form(hub: Hub, session: requests.Session, page: requests.Response, form_id: str,
              values: dict) -> requests.Response:
    """Submit a form of a page with these values and the page's XSRF token, as the browser does."""
    form = soup(page).find("form", id=form_id)
    assert form is not None, f"no form {form_id} on {page.url}"
    data = {"_xsrf": form.find("input", attrs={"name": "_xsrf"})["value"], **values}
    return session.post(f"{hub.url}{form['action']}", data=data)


def variables(page: requests.Response, dataset: str, *names: str) -> list[str]:
    """The values of these variables' checkboxes on a form (``dataset:table:column``)."""
    boxes = [box["value"] for box in soup(page).select(f"fieldset[data-dataset={dataset}] input[name=variables]")]
    chosen = [v for v in boxes if v.rsplit(":", 1)[1] in names]
    assert len(chosen) == len(names), boxes
    return chosen


def test_a_french_browser_sees_french_pages(pages_hub):
    alice = pages_hub.login("alice", "fr")
    reply = get(pages_hub, alice)
    assert reply.status_code == 200 and reply.url == f"{pages_hub.url}{PAGES}"
    page = soup(reply)
    assert page.html["lang"] == "fr"
    assert page.h1.get_text() == "Catalogue des jeux de données"
    stays = page.find("section", id="dataset-hospital_stays")
    assert "Identifiant direct" in stays.get_text() and "Responsable de traitement" in stays.get_text()
    # The schema and the files' fingerprints, as registered, and never a row of data.
    with catalogue(pages_hub) as session:
        dataset = session.get(Dataset, "hospital_stays")
        columns, hashes = [c["name"] for c in dataset.columns], dataset.file_hashes
    assert [row.td.get_text() for row in stays.select("table.dataset-columns tbody tr")] == columns
    assert {tuple(td.get_text() for td in row.find_all("td"))
            for row in stays.select("table.dataset-files tbody tr")} == set(hashes.items())
    # The hub's look: its style sheet, its logo, its way back home.
    assert page.find("link", rel="stylesheet")["href"] == "/hub/static/css/style.min.css"
    assert page.find("a", id="nav-home")["href"] == "/hub/home"
    apply_page = soup(get(pages_hub, alice, "apply"))
    assert apply_page.h1.get_text() == "Déposer une demande"
    stays_request = apply_page.find("fieldset", id="request-hospital_stays")
    assert "Données du" in stays_request.get_text() and "Table" in stays_request.get_text()
    assert apply_page.find("button", id="submit-application").get_text() == "Envoyer la demande"


def test_a_bad_application_is_shown_again_with_its_problems_and_every_value_kept(pages_hub):
    alice = pages_hub.login("alice")
    form = get(pages_hub, alice, "apply")
    bad = {**APPLICATION, "members": "erin, ghost", "starts_on": "2027-06-30", "ends_on": "2027-01-01",
           "variables": variables(form, "hospital_stays", "main_diagnosis"), "period_until:hospital_stays": ""}
    reply = post_form(pages_hub, alice, form, "application", bad)
    assert reply.status_code == 400
    page = soup(reply)
    assert "The application was not recorded" in page.find(id="problems").get_text()
    assert page.find(id="ends_on-problem").get_text() == (
        "The end date (2027-01-01) is before the start date (2027-06-30).")
    assert page.find(id="members-problem").get_text().startswith("ghost: nobody of that username")
    for name in ("slug", "title", "members", "starts_on", "ends_on"):
        assert page.find("input", attrs={"name": name})["value"] == bad[name], name
    for name in ("lay_summary", "purpose", "public_interest"):
        assert page.find("textarea", attrs={"name": name}).get_text() == bad[name], name
    checked = [box["value"] for box in page.find_all("input", attrs={"name": "datasets"}) if box.has_attr("checked")]
    assert checked == ["hospital_stays"]
    # the variables and the period too, with the half period marked
    assert [box["value"] for box in page.select("input[name=variables][checked]")] == bad["variables"]
    assert page.find(id="period-hospital_stays-problem").get_text().startswith("Give both ends of the period")
    assert page.find("input", attrs={"name": "period_from:hospital_stays"})["value"] == "2022-01-01"
    with catalogue(pages_hub) as session:
        assert session.get(Project, SLUG) is None


def test_alice_applies_for_a_project_with_hospital_stays(pages_hub):
    alice = pages_hub.login("alice")
    form = get(pages_hub, alice, "apply")
    application = {**APPLICATION, "variables": variables(form, "hospital_stays", "main_diagnosis", "admission_date")}
    reply = post_form(pages_hub, alice, form, "application", application)
    assert reply.status_code == 200 and reply.url == f"{pages_hub.url}{PAGES}projects?applied={SLUG}"
    page = soup(reply)
    assert SLUG in page.find(id="applied").get_text()
    row = page.find("tr", id=f"project-{SLUG}")
    assert row["data-status"] == "requested" and row.find(class_="waiting") is not None
    assert row.find("a", class_="start-workspace") is None
    with catalogue(pages_hub) as session:
        project = session.get(Project, SLUG)
        assert project.status is ProjectStatus.REQUESTED and project.requested_datasets == ["hospital_stays"]
        [columns] = project.requested_specs["hospital_stays"]["tables"].values()
        assert sorted(columns) == ["admission_date", "main_diagnosis"]
        assert project.requested_specs["hospital_stays"]["period"] == ["2022-01-01", "2022-12-31"]
        assert {m.username for m in project.memberships} == {"alice", "erin"}
        applied = session.query(AuditEvent).filter_by(action="project.applied", project=SLUG).one()
        assert applied.actor == "alice"


def test_bob_cannot_see_the_steward_queue_nor_decide(pages_hub):
    bob = pages_hub.login("bob")
    reply = get(pages_hub, bob, "steward")
    assert reply.status_code == 403
    assert "bob, who is not a data steward" in soup(reply).find(id="error-message").get_text()
    assert SLUG not in reply.text
    assert soup(get(pages_hub, bob)).find("a", id="nav-steward") is None
    # Nor by posting the decision form himself, with a valid XSRF token of his own.
    own_form = get(pages_hub, bob, "apply")
    xsrf = soup(own_form).find("input", attrs={"name": "_xsrf"})["value"]
    forged = bob.post(f"{pages_hub.url}{PAGES}steward/{SLUG}/approve", data={
        "_xsrf": xsrf, "approval_reference": "FORGED", "starts_on": APPLICATION["starts_on"],
        "ends_on": APPLICATION["ends_on"]})
    assert forged.status_code == 403
    with catalogue(pages_hub) as session:
        assert session.get(Project, SLUG).status is ProjectStatus.REQUESTED


def test_a_decision_without_the_form_token_is_refused(pages_hub):
    steward = pages_hub.login("steward")
    get(pages_hub, steward, "steward")
    reply = steward.post(f"{pages_hub.url}{PAGES}steward/{SLUG}/approve", data={
        "approval_reference": "CSRF", "starts_on": APPLICATION["starts_on"], "ends_on": APPLICATION["ends_on"]})
    assert reply.status_code == 403
    assert "This form has expired" in soup(reply).find(id="error-message").get_text()
    with catalogue(pages_hub) as session:
        assert session.get(Project, SLUG).status is ProjectStatus.REQUESTED


def test_the_steward_amends_what_is_asked_and_a_wrong_amendment_changes_nothing(pages_hub):
    steward = pages_hub.login("steward")
    queue = get(pages_hub, steward, "steward")
    asked = soup(queue).find(id=f"asked-{SLUG}")
    assert "main_diagnosis" in asked.get_text() and "2022-01-01 – 2022-12-31" in asked.get_text()
    form = soup(queue).find("form", id=f"amend-{SLUG}")
    ticked = [box["value"] for box in form.select("input[name=variables][checked]")]
    assert sorted(v.rsplit(":", 1)[1] for v in ticked) == ["admission_date", "main_diagnosis"]
    [table] = {v.split(":")[1] for v in ticked}
    forged = post_form(pages_hub, steward, queue, f"amend-{SLUG}", {
        "datasets": ["hospital_stays"], "variables": [*ticked, f"hospital_stays:{table}:blood_group"],
        "period_from:hospital_stays": "2022-01-01", "period_until:hospital_stays": "2022-12-31"})
    assert forged.status_code == 400
    card = soup(forged).find("section", id=f"application-{SLUG}")
    assert "has no column blood_group" in card.find(id="variables-hospital_stays-problem").get_text()
    assert card.find("details").has_attr("open")
    with catalogue(pages_hub) as session:
        assert session.query(AuditEvent).filter_by(action="project.request_amended", project=SLUG).count() == 0
        assert session.get(Project, SLUG).requested_specs["hospital_stays"]["period"] == ["2022-01-01", "2022-12-31"]
    amended = post_form(pages_hub, steward, queue, f"amend-{SLUG}", {
        "datasets": ["hospital_stays"], "variables": [*ticked, f"hospital_stays:{table}:length_of_stay"],
        "period_from:hospital_stays": "2022-01-01", "period_until:hospital_stays": "2022-06-30"})
    assert amended.status_code == 200 and amended.url.endswith(f"{PAGES}steward?amended={SLUG}")
    assert "length_of_stay" in soup(amended).find(id=f"asked-{SLUG}").get_text()
    assert f"What project {SLUG} asks for is amended" in soup(amended).find(id="notice").get_text()
    with catalogue(pages_hub) as session:
        event = session.query(AuditEvent).filter_by(action="project.request_amended", project=SLUG).one()
        assert event.actor == "steward" and event.details["after"]["hospital_stays"]["period"] == (
            "2022-01-01 – 2022-06-30")


def test_the_steward_approves_it_from_the_queue(pages_hub):
    steward = pages_hub.login("steward")
    queue = get(pages_hub, steward, "steward")
    assert queue.status_code == 200
    card = soup(queue).find("section", id=f"application-{SLUG}")
    assert "Alice Martin" in card.get_text() and "hospital_stays" in card.get_text()
    # The approval form comes filled with the period asked for.
    assert card.find("input", attrs={"name": "starts_on"})["value"] == APPLICATION["starts_on"]
    missing = post_form(pages_hub, steward, queue, f"approve-{SLUG}", {
        "approval_reference": " ", "starts_on": APPLICATION["starts_on"], "ends_on": APPLICATION["ends_on"]})
    assert missing.status_code == 400
    assert "This field is required." in soup(missing).find("section", id=f"application-{SLUG}").get_text()
    reply = post_form(pages_hub, steward, queue, f"approve-{SLUG}", {
        "approval_reference": "CESREES-2026-0300", "starts_on": APPLICATION["starts_on"],
        "ends_on": APPLICATION["ends_on"]})
    assert reply.status_code == 200 and reply.url.endswith(f"{PAGES}steward?approved={SLUG}&starts={APPLICATION['starts_on']}")
    page = soup(reply)
    assert SLUG in page.find(id="notice").get_text()
    assert page.find("section", id=f"application-{SLUG}") is None
    # The same form sent again (a second steward, a second click) decides nothing more, and says why.
    again = post_form(pages_hub, steward, queue, f"approve-{SLUG}", {
        "approval_reference": "CESREES-2026-0301", "starts_on": APPLICATION["starts_on"],
        "ends_on": APPLICATION["ends_on"]})
    assert again.status_code == 400
    assert f"Project {SLUG} is active: it was decided already" in soup(again).find(id=f"problem-{SLUG}").get_text()
    with catalogue(pages_hub) as session:
        project = session.get(Project, SLUG)
        assert project.status is ProjectStatus.ACTIVE and project.decided_by == "steward"
        assert [(g.dataset_slug, g.approval_reference) for g in project.grants] == [
            ("hospital_stays", "CESREES-2026-0300")]
        # granted exactly as amended: three variables over the first half of 2022
        [grant] = project.grants
        [columns] = grant.spec["tables"].values()
        assert sorted(columns) == ["admission_date", "length_of_stay", "main_diagnosis"]
        assert grant.spec["period"] == ["2022-01-01", "2022-06-30"]


def test_alice_sees_it_in_her_projects_and_its_workspace_has_exactly_its_dataset(pages_hub):
    alice = pages_hub.login("alice")
    row = soup(get(pages_hub, alice, "projects")).find("tr", id=f"project-{SLUG}")
    assert row["data-status"] == "active"
    assert [li["data-dataset"] for li in row.select("li.grant")] == ["hospital_stays"]
    assert APPLICATION["ends_on"] in row.find("li", class_="grant").get_text()
    assert row.find("a", class_="start-workspace")["href"] == f"/hub/spawn/alice/{SLUG}"
    container = pages_hub.start(alice, "alice", SLUG)
    try:
        listing = container.exec_run(["ls", "/data"], user="1000:100").output.decode().split()
        assert listing == ["hospital_stays"]
    finally:
        pages_hub.stop(alice, "alice", SLUG)


def test_a_refused_application_tells_its_reason_and_stays_off_the_register(pages_hub):
    bob = pages_hub.login("bob")
    form = get(pages_hub, bob, "apply")
    refused = {**APPLICATION, "slug": "lab-trends", "title": "Trends in laboratory results",
               "datasets": ["beneficiaries"], "members": "", "variables": variables(form, "beneficiaries", "sex", "region"),
               "period_from:hospital_stays": "", "period_until:hospital_stays": ""}
    post_form(pages_hub, bob, form, "application", refused).raise_for_status()
    steward = pages_hub.login("steward")
    reply = post_form(pages_hub, steward, get(pages_hub, steward, "steward"), "refuse-lab-trends",
                      {"reason": "The purpose does not need identifying columns; apply again without them."})
    assert reply.url.endswith(f"{PAGES}steward?refused=lab-trends")
    row = soup(get(pages_hub, bob, "projects")).find("tr", id="project-lab-trends")
    assert row["data-status"] == "closed" and "apply again without them" in row.find(class_="closed").get_text()
    assert "lab-trends" not in requests.get(f"{pages_hub.url}{PAGES}register").text


def test_the_public_register_shows_it_without_login_and_names_nobody(pages_hub):
    reply = requests.get(f"{pages_hub.url}{PAGES}register", allow_redirects=False)
    assert reply.status_code == 200
    reply.encoding = "utf-8"
    page = soup(reply)
    entry = page.find("tr", id=f"register-{SLUG}")
    assert entry is not None
    text = entry.get_text(" ")
    for shown in (APPLICATION["title"], APPLICATION["lay_summary"], "hospital_stays", "CESREES-2026-0300",
                  APPLICATION["starts_on"], APPLICATION["ends_on"], "main_diagnosis", "length_of_stay",
                  "2022-01-01 – 2022-06-30"):
        assert shown in text
    assert "stay_id" not in text  # a variable not granted is not listed
    assert page.find(id="login") is not None  # read without signing in
    with catalogue(pages_hub) as session:
        people = session.query(Person).all()
    words = set(re.findall(r"[\w.-]+", page.get_text(" ").lower()))
    assert not words & {p.username for p in people}
    assert not [p.display_name for p in people if p.display_name.lower() in page.get_text(" ").lower()]
