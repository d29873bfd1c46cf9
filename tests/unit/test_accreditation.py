"""Issue 19, item 5: researchers' accreditation, recorded by stewards (command, audit row); an
expired or missing one refuses workspace starts and export submissions, saying whom to ask."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from datasets.accreditation import record_accreditation, require_accredited
from datasets.access import AccessRefused
from datasets.access import Refusal
from tre_core.cli import app
from tre_core.db import session_scope
from datasets.messages import explain
from datasets.models import AnalysisImage, AuditEvent, Person
from datasets.workflow import PermissionDenied, WorkflowError
from egress_review.errors import Forbidden
from tests.unit.egress_fixtures import make_airlock

TODAY = dt.date(2026, 11, 23)


def lapse(url: str, username: str, until: dt.date | None) -> None:
    with session_scope(url) as session:
        session.get(Person, username).accredited_until = until


def test_the_demo_researchers_are_accredited(catalogue_url):
    with session_scope(catalogue_url) as session:
        for username in ("alice", "erin", "bob"):
            assert require_accredited(session, username, TODAY).accredited_until > TODAY


@pytest.mark.parametrize(("until", "reason", "english", "french"), [
    (dt.date(2026, 6, 30), Refusal.ACCREDITATION_EXPIRED, "Your researcher accreditation ended on 2026-06-30",
     "Votre habilitation de chercheur a pris fin le 2026-06-30"),
    (None, Refusal.NOT_ACCREDITED, "You have no researcher accreditation on record",
     "Aucune habilitation de chercheur n’est enregistrée pour vous"),
])
def test_an_expired_or_missing_accreditation_is_refused_saying_whom_to_ask(catalogue_url, until, reason, english,
                                                                          french):
    lapse(catalogue_url, "alice", until)
    with session_scope(catalogue_url) as session, pytest.raises(AccessRefused) as refused:
        require_accredited(session, "alice", TODAY)
    assert refused.value.reason is reason
    assert english in explain(refused.value, "en") and "Sam Steward" in explain(refused.value, "en")
    assert french in explain(refused.value, "fr") and "Sam Steward" in explain(refused.value, "fr")


def test_an_expired_accreditation_refuses_the_export_submission(catalogue_url, tmp_path):
    airlock = make_airlock(catalogue_url, tmp_path)
    request = airlock.create("alice", "cardio-risk", "Readmissions by region")
    airlock.add_file("alice", request, "outputs/table.csv", "Table 1", "output",
                     context="Readmissions within a year, by region", controls="Counts under 10 suppressed")
    lapse(catalogue_url, "alice", dt.date(2026, 6, 30))
    with pytest.raises(Forbidden) as refused:
        airlock.submit("alice", request)
    assert "ended on 2026-06-30" in refused.value.args[0] and "Sam Steward" in refused.value.args[0]
    assert "a pris fin le 2026-06-30" in refused.value.args[0].said_in("fr")
    assert airlock.get("alice", request).state == "draft"
    lapse(catalogue_url, "alice", dt.date(2027, 6, 30))  # the control: renewed, the same request goes
    airlock.submit("alice", request)
    assert airlock.get("alice", request).state == "submitted"


def test_the_spawner_access_check_refuses_an_expired_accreditation(catalogue_url, tmp_path):
    """The spawner's own access check (ProjectSpawner._workspace_access), on the catalogue."""
    from spawner.catalogue_workspace import CatalogueWorkspace

    class Probe:
        catalogue_url = None
        name = "cardio-risk"

        class user:
            name = "alice"

    probe = Probe()
    probe.catalogue_url = catalogue_url
    with session_scope(catalogue_url) as session:
        session.add(AnalysisImage(name="singleuser", version=1, digest="sha256:" + "a" * 64, built_by="admin",
                                  built_at=dt.datetime.now(dt.UTC)))
    CatalogueWorkspace._workspace_access(probe)  # accredited: allowed (the control)
    lapse(catalogue_url, "alice", dt.date(2026, 6, 30))
    with pytest.raises(AccessRefused) as refused:
        CatalogueWorkspace._workspace_access(probe)
    assert refused.value.reason is Refusal.ACCREDITATION_EXPIRED


def test_stewards_record_accreditations_audited(catalogue_url):
    with session_scope(catalogue_url) as session, pytest.raises(PermissionDenied):
        record_accreditation(session, "bob", "alice", dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    with session_scope(catalogue_url) as session, pytest.raises(WorkflowError, match="own accreditation"):
        session.get(Person, "steward").is_data_steward = True
        record_accreditation(session, "steward", "steward", dt.date(2026, 1, 1), dt.date(2027, 1, 1))
    with session_scope(catalogue_url) as session, pytest.raises(WorkflowError, match="before the training"):
        record_accreditation(session, "steward", "alice", dt.date(2026, 1, 1), dt.date(2025, 1, 1))
    with session_scope(catalogue_url) as session:
        record_accreditation(session, "steward", "alice", dt.date(2026, 10, 1), dt.date(2028, 9, 30))
    with session_scope(catalogue_url) as session:
        alice = session.get(Person, "alice")
        assert (alice.accredited_on, alice.accredited_until, alice.accredited_by) == (
            dt.date(2026, 10, 1), dt.date(2028, 9, 30), "steward")
        rows = [e for e in session.scalars(select(AuditEvent)) if e.action == "accreditation.recorded"]
        assert [(e.actor, e.details["username"], e.details["until"]) for e in rows] == [
            ("steward", "alice", "2028-09-30")]


def test_the_tre_command_records_an_accreditation(catalogue_url, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    runner = CliRunner()
    result = runner.invoke(app, ["people", "accredit", "erin", "--as", "steward", "--trained-on", "2026-09-01",
                                 "--until", "2027-08-31"])
    assert result.exit_code == 0, result.output
    assert "erin is accredited from 2026-09-01 until 2027-08-31" in result.output
    result = runner.invoke(app, ["people", "accredit", "erin", "--as", "alice", "--trained-on", "2026-09-01",
                                 "--until", "2027-08-31"])
    assert result.exit_code == 1 and "alice is not a data steward" in result.output
    with session_scope(catalogue_url) as session:
        assert session.get(Person, "erin").accredited_until == dt.date(2027, 8, 31)


@pytest.mark.parametrize(("language", "texts"), [
    ("en", ["Researcher accreditations", "Expired on 2026-06-30", "Not accredited"]),
    ("fr", ["Habilitations des chercheurs", "Expirée le 2026-06-30", "Non habilité"]),
])
def test_the_stewards_page_lists_who_is_accredited_until_when(catalogue_url, language, texts):
    from bs4 import BeautifulSoup

    from hub.catalogue_service.accreditation_page import accreditations
    from hub.catalogue_service.app import Site

    lapse(catalogue_url, "alice", dt.date(2026, 6, 30))
    with session_scope(catalogue_url) as session:
        rows = {row.username: row for row in accreditations(session, TODAY)}
    assert (rows["alice"].state, rows["erin"].state, rows["steward"].state) == ("expired", "valid", "none")
    html = Site("sqlite://", prefix="/services/catalogue/", hub_prefix="/hub/").render(
        "accreditations.html", language, page="accreditations", viewer=None, user={"name": "steward"},
        xsrf_form_html=lambda: "", rows=list(rows.values()), problems={}, notice="")
    text = BeautifulSoup(html, "html.parser").get_text()
    assert all(t in text for t in texts)
