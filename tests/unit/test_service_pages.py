"""What the catalogue pages show, read from a real catalogue (SQLite and PostgreSQL) and rendered
in English and French: schema and fingerprints but no data, each person's projects, the stewards'
queue, and a public register that names nobody."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from datasets import workflow
from datasets.access import Refusal
from tre_core.db import session_scope
from tre_core.i18n import _messages
from datasets.models import AuditEvent, Person, Project, ProjectStatus
from hub.catalogue_service import queries
from hub.catalogue_service.app import VOCABULARY, Site, submit_application
from hub.catalogue_service.forms import AmendInput, ApplicationInput, ApprovalInput, RefusalInput, RequestInput
from hub.webkit.forms import Problem

SERVICE = Path(__file__).resolve().parents[2] / "hub" / "catalogue_service"
TODAY = dt.date(2026, 11, 23)
STROKE = ApplicationInput(slug="stroke-care", title="Stroke care pathways",
                          lay_summary="How stroke patients are followed.", purpose="Describe pathways.", public_interest="Better rehabilitation.",
                          datasets=["hospital_stays"], members="erin", starts_on="2026-11-01", ends_on="2027-10-31",
                          request=RequestInput(variables=["hospital_stays:.:value"]))


def read(url, query, *args):
    with session_scope(url) as session:
        return query(session, *args)


def render(template: str, language: str = "en", **values) -> BeautifulSoup:
    site = Site("sqlite://", prefix="/services/catalogue/", hub_prefix="/hub/")
    values.setdefault("user", {"name": "alice"})
    html = site.render(template, language, page="", viewer=values.pop("viewer", None),
                       xsrf_form_html=lambda: "", **values)
    return BeautifulSoup(html, "html.parser")


def apply(url, typed=STROKE, applicant="alice"):
    with session_scope(url) as session:
        return submit_application(session, applicant, typed)


def test_the_catalogue_shows_each_schema_and_file_fingerprint(catalogue_url):
    cards = {card.slug: card for card in read(catalogue_url, queries.dataset_cards)}
    assert set(cards) == {"beneficiaries", "claims", "hospital_stays", "referentials", "cohort"}
    stays = cards["hospital_stays"]
    assert stays.row_count == 2 and stays.version == "2024.1"
    assert [(c.name, c.identifier) for c in stays.columns][:3] == [
        ("stay_id", "direct"), ("patient_id", "direct"), ("admission_date", "indirect")]
    assert [name for name, _ in stays.files] == ["_DATASET.md", "hospital_stays.parquet"]
    page = render("catalogue.html", "fr", datasets=list(cards.values()))
    section = page.find("section", id="dataset-hospital_stays")
    assert stays.files[1][1] in section.get_text()
    assert "Identifiant direct" in section.get_text() and "pseudonymisé" in section.get_text()


def test_an_application_with_problems_records_nothing(catalogue_url):
    problems = apply(catalogue_url, ApplicationInput(**{**vars(STROKE), "members": "erin, ghost",
                                                        "ends_on": "2026-01-01"}))
    assert set(problems) == {"members", "ends_on"}
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "stroke-care") is None


def test_my_projects_show_the_grants_in_force_and_whether_a_workspace_can_start(catalogue_url):
    assert apply(catalogue_url) == {}
    alice = {p.slug: p for p in read(catalogue_url, queries.my_projects, "alice", TODAY)}
    assert set(alice) == {"cardio-risk", "stroke-care"}
    cardio = alice["cardio-risk"]
    assert cardio.refusal is None and cardio.role == "principal_investigator"
    assert [(g.dataset, g.ends_on) for g in cardio.grants_in_force] == [
        ("claims", dt.date(2028, 12, 31)), ("hospital_stays", dt.date(2028, 12, 31))]
    stroke = alice["stroke-care"]
    assert stroke.status == "requested" and stroke.grants_in_force == ()
    assert stroke.refusal[0] is Refusal.PROJECT_NOT_STARTABLE
    assert stroke.requested_datasets == ("hospital_stays",)
    page = render("projects.html", "en", projects=list(alice.values()), applied="stroke-care",
                  spawn_prefix="/hub/spawn/alice/")
    assert page.find("a", id="start-cardio-risk")["href"] == "/hub/spawn/alice/cardio-risk"
    assert page.find("a", id="start-stroke-care") is None
    assert "stroke-care" in page.find(id="applied").get_text()
    assert [p.slug for p in read(catalogue_url, queries.my_projects, "bob", TODAY)] == ["diabetes-outcomes"]


def test_the_queue_holds_the_applications_with_their_members(catalogue_url):
    assert read(catalogue_url, queries.steward_queue) == []
    apply(catalogue_url)
    [application] = read(catalogue_url, queries.steward_queue)
    assert application.slug == "stroke-care" and application.applicant == "alice"
    assert [(m.username, m.role) for m in application.members] == [
        ("alice", "principal_investigator"), ("erin", "researcher")]
    page = render("steward.html", "fr", queue=[application], problems={},
                  approvals={"stroke-care": ApprovalInput(starts_on="2026-11-01")},
                  refusals={"stroke-care": RefusalInput()}, notice={}, amending=set(),
                  amendments={"stroke-care": AmendInput(["hospital_stays"], RequestInput.of_specs(
                      application.requested_specs))}, choices=read(catalogue_url, queries.dataset_choices),
                  viewer=read(catalogue_url, queries.viewer, "steward"))
    form = page.find("form", id="approve-stroke-care")
    assert form["action"] == "/services/catalogue/steward/stroke-care/approve"
    assert form.find("input", attrs={"name": "starts_on"})["value"] == "2026-11-01"
    assert page.find("a", id="nav-steward") is not None


def test_only_stewards_and_admins_are_stewards(catalogue_url):
    assert read(catalogue_url, queries.viewer, "steward").is_steward
    assert read(catalogue_url, queries.viewer, "admin").is_steward
    assert not read(catalogue_url, queries.viewer, "bob").is_steward
    assert read(catalogue_url, queries.viewer, "nobody") is None


def test_the_register_lists_approved_projects_and_names_nobody(catalogue_url):
    apply(catalogue_url)
    apply(catalogue_url, ApplicationInput(**{**vars(STROKE), "slug": "lab-trends", "datasets": ["beneficiaries"],
                                                 "request": RequestInput(variables=["beneficiaries:.:value"])}))
    apply(catalogue_url, ApplicationInput(**{**vars(STROKE), "slug": "waiting"}))
    with session_scope(catalogue_url) as session:
        workflow.approve(session, "steward", "stroke-care", approval_reference="CESREES-2026-0300",
                         starts_on=dt.date(2026, 11, 1), ends_on=dt.date(2027, 10, 31))
        workflow.refuse(session, "steward", "lab-trends", reason="Too broad.")
    entries = read(catalogue_url, queries.public_register)
    assert [e.slug for e in entries] == ["stroke-care", "cardio-risk", "diabetes-outcomes"]
    [stays] = entries[0].datasets
    assert (stays.dataset, stays.title, stays.variables, stays.period) == (
        "hospital_stays", "Hospital stays (synthetic, PMSI MCO-like)", ("value",), None)
    assert entries[0].approval_reference == "CESREES-2026-0300"
    page = render("register.html", "en", entries=entries, user=None)
    text = page.get_text(" ")
    with session_scope(catalogue_url) as session:
        people = session.query(Person).all()
    words = set(re.findall(r"[\w.-]+", text.lower()))
    assert not words & {p.username for p in people}
    assert not [p.display_name for p in people if p.display_name in text]


def test_applying_is_audited(catalogue_url):
    apply(catalogue_url)
    with session_scope(catalogue_url) as session:
        event = session.query(AuditEvent).filter_by(action="project.applied").one()
        assert (event.actor, event.project) == ("alice", "stroke-care")
        assert session.get(Project, "stroke-care").status is ProjectStatus.REQUESTED


def _texts_of_the_pages() -> set[str]:
    """Every English text the pages can show: in templates, in forms' problems, and the vocabulary."""
    texts = set(VOCABULARY)
    for template in (SERVICE / "templates").glob("*.html"):
        texts |= set(re.findall(r'_\("([^"]+)"', template.read_text()))
    for module in ("forms.py", "app.py"):
        for node in ast.walk(ast.parse((SERVICE / module).read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                first = {"Problem": node.args[0], "translate": node.args[1] if len(node.args) > 1 else None}.get(
                    node.func.id)
                if isinstance(first, ast.Constant):
                    texts.add(first.value)
    return texts


def test_every_text_of_the_pages_is_translated_into_french():
    texts = _texts_of_the_pages()
    assert len(texts) > 80
    assert sorted(texts - set(_messages("fr"))) == []


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_page_renders_in_the_hubs_look(language):
    pages = {
        "catalogue.html": dict(datasets=[]),
        "projects.html": dict(projects=[], applied=None, spawn_prefix="/hub/spawn/alice/"),
        "apply.html": dict(typed=ApplicationInput(), choices=[queries.DatasetChoice("claims", "Claims", "2024.1", (
                               ("claims", (queries.Variable("claims", "atc_code", "string", None, False),)),))],
                           problems={"form": Problem("The catalogue did not record the application: {reason}",
                                                     {"reason": "x"})}),
        "steward.html": dict(queue=[], approvals={}, refusals={}, problems={}, notice={"refused": "x"},
                             amendments={}, amending=set(), choices=[]),
        "register.html": dict(entries=[]),
        "error.html": dict(status_code=404, reason="Not Found", message=None),
    }
    for template, values in pages.items():
        page = render(template, language, **values)
        assert page.html["lang"] == language
        assert page.find("link", rel="stylesheet")["href"] == "/hub/static/css/style.min.css"
        assert page.find("a", id="logout")["href"] == "/hub/logout"
        assert not page.find("script"), "the pages work without JavaScript"


def test_every_status_and_role_has_its_words():
    from datasets.models import MemberRole
    from hub.catalogue_service.app import ROLE_TEXT, STATUS_TEXT

    assert set(STATUS_TEXT) == {s.value for s in ProjectStatus}
    assert set(ROLE_TEXT) == {r.value for r in MemberRole}


def test_each_version_shows_tables_rows_root_hash_status_and_projects(catalogue_url):
    from datasets import versions
    from datasets.models import DatasetVersion

    with session_scope(catalogue_url) as session:
        versions.suspend(session, "scrubber", "claims", "2024.1", "claims.parquet does not match its registered sha256")
        root = session.get(DatasetVersion, ("claims", "2024.1")).root_hash
    cards = {card.slug: card for card in read(catalogue_url, queries.dataset_cards)}
    [claims] = cards["claims"].versions
    assert (claims.status, claims.root_hash, claims.rows, claims.files) == ("suspended", root, 2, 2)  # + _DATASET.md
    assert claims.projects == ("cardio-risk", "diabetes-outcomes")
    assert [(t.name, t.rows, t.partitions) for t in claims.tables] == [("claims", 2, 0)]
    for language, status, granted in (("en", "Suspended: failed a check", "Projects granted"),
                                      ("fr", "Suspendue : a échoué à un contrôle", "Projets autorisés")):
        page = render("catalogue.html", language, datasets=list(cards.values()))
        version = page.select_one("section#dataset-claims .dataset-version-detail")
        assert version["data-status"] == "suspended" and status in version.get_text()
        assert root in version.select_one(".version-root").get_text() and granted in version.get_text()
        assert version.select_one(".version-projects").get_text().split(", ") == ["cardio-risk", "diabetes-outcomes"]


def test_the_steward_amends_what_is_asked_and_the_approval_grants_exactly_that(catalogue_url):
    from hub.catalogue_service.app import amend_request

    apply(catalogue_url)
    with session_scope(catalogue_url) as session:
        assert session.get(Project, "stroke-care").requested_specs["hospital_stays"]["tables"] == {".": ["value"]}
    forged = AmendInput(["hospital_stays"], RequestInput(variables=["hospital_stays:.:blood_group"]))
    with session_scope(catalogue_url) as session:
        problems = amend_request(session, "steward", "stroke-care", forged)
    assert problems["variables:hospital_stays"].params["columns"] == "blood_group"
    amended = AmendInput(["hospital_stays"], RequestInput(variables=["hospital_stays:.:patient_id",
                                                                     "hospital_stays:.:value"]))
    with session_scope(catalogue_url) as session:
        assert session.query(AuditEvent).filter_by(action="project.request_amended").count() == 0  # refused: nothing
        assert amend_request(session, "steward", "stroke-care", amended) == {}
    with session_scope(catalogue_url) as session:
        event = session.query(AuditEvent).filter_by(action="project.request_amended").one()
        assert (event.actor, event.project) == ("steward", "stroke-care")
        assert event.details["before"]["hospital_stays"]["variables"] == ["value"]
        assert event.details["after"]["hospital_stays"]["variables"] == ["patient_id", "value"]
        with pytest.raises(workflow.PermissionDenied):  # alice applied: she cannot amend her own request
            workflow.amend_request(session, "alice", "stroke-care", {"hospital_stays": {"tables": {".": ["value"]}}})
    [application] = read(catalogue_url, queries.steward_queue)
    assert [(a.dataset, a.variables) for a in application.asked] == [("hospital_stays", ("patient_id", "value"))]
    with session_scope(catalogue_url) as session:
        workflow.approve(session, "steward", "stroke-care", approval_reference="CESREES-2026-0300",
                         starts_on=dt.date(2026, 11, 1), ends_on=dt.date(2027, 10, 31))
        [grant] = session.get(Project, "stroke-care").grants
        assert grant.spec["tables"] == {".": ["patient_id", "value"]} and grant.spec["period"] is None
    [entry] = [e for e in read(catalogue_url, queries.public_register) if e.slug == "stroke-care"]
    assert [(d.dataset, d.variables) for d in entry.datasets] == [("hospital_stays", ("patient_id", "value"))]
    page = render("register.html", "fr", entries=[entry], user=None)
    granted = page.select_one("#register-stroke-care li.granted-dataset")
    assert "patient_id" in granted.get_text() and "toutes les années" in granted.get_text()


def test_extracts_show_their_progress_to_members_and_counts_only_to_stewards(catalogue_url):
    from datasets.models import Extract, ExtractStatus, Grant, OptOut

    now = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    with session_scope(catalogue_url) as session:
        grant = session.query(Grant).filter_by(project_slug="cardio-risk", dataset_slug="claims").one()
        session.add(Extract(project_id="cardio-risk", dataset_version_id="claims@2024.1", grant_id=grant.id,
                            spec_digest="0" * 64, status=ExtractStatus.BUILDING, progress=40, created_at=now))
        session.add(Extract(project_id="cardio-risk", dataset_version_id="hospital_stays@2024.1", spec_digest="1" * 64,
                            status=ExtractStatus.READY, progress=100, created_at=now, people=1200, linked=1140,
                            cohort_people=1200))
        session.add(OptOut(person_key="P000042", objected_on=dt.date(2026, 11, 2), recorded_at=now,
                           recorded_by="steward", source="test"))
    [cardio] = [p for p in read(catalogue_url, queries.my_projects, "alice", TODAY) if p.slug == "cardio-risk"]
    assert {(e.dataset, e.status, e.progress) for e in cardio.extracts} == {
        ("claims", "building", 40), ("hospital_stays", "ready", 100)}
    for language, preparing in (("en", "Being prepared: 40 %"), ("fr", "En préparation : 40 %")):
        page = render("projects.html", language, projects=[cardio], applied=None, spawn_prefix="/hub/spawn/alice/")
        claims = page.select_one("#project-cardio-risk li.grant[data-dataset=claims] .extract")
        assert claims["data-progress"] == "40" and preparing in claims.get_text()
    overview = read(catalogue_url, queries.extracts_overview)
    assert overview.optouts == 1
    page = render("steward.html", "en", queue=[], approvals={}, refusals={}, problems={}, notice={}, amendments={},
                  amending=set(), choices=[], overview=overview, viewer=read(catalogue_url, queries.viewer, "steward"))
    stays = page.select_one("tr.extract[data-dataset=hospital_stays]")
    assert "95 % (1,140 of 1,200 cohort people found)" in stays.select_one(".linkage-rate").get_text()
    assert "opt-out register: 1." in page.find(id="optouts").get_text()
    assert "P000042" not in page.get_text()
