"""The tre command as an admin meets it: clear refusals, exit codes, the audit check."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from tre_core.cli import app
from tre_core.db import session_scope
from datasets import audit
from datasets.models import AuditEvent

runner = CliRunner()


@pytest.fixture
def tre(catalogue_url, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


def test_a_project_from_application_to_suspension(tre):
    result = tre("projects", "create", "stroke-care", "--as", "alice", "--title", "Stroke care",
                 "--lay-summary", "Pathways after a stroke.", "--purpose", "Describe pathways.",
                 "--public-interest", "Better rehabilitation.", "--datasets", "hospital_stays", "--members", "erin")
    assert result.exit_code == 0, result.output
    result = tre("projects", "approve", "stroke-care", "--as", "steward", "--reference", "CESREES-1",
                 "--from", "2026-01-01", "--until", "2030-12-31")
    assert result.exit_code == 0 and "approved" in result.output
    result = tre("projects", "suspend", "stroke-care", "--as", "steward", "--reason", "audit")
    assert result.exit_code == 0 and "suspended" in result.output


def test_refusals_say_why_and_exit_non_zero(tre):
    result = tre("projects", "suspend", "cardio-risk", "--as", "bob", "--reason", "x")
    assert result.exit_code == 1 and "bob is not a data steward" in result.output
    result = tre("checkers", "add", "dave", "--as", "admin", "--until", "2020-01-01")
    assert result.exit_code == 1 and "give an end date in the future" in result.output


def test_audit_verify_names_the_first_bad_row(tre, catalogue_url):
    with session_scope(catalogue_url) as session:  # the demo catalogue's load: one row per member and grant
        before = len(list(audit.events(session)))
    for project in ("cardio-risk", "diabetes-outcomes"):
        assert tre("projects", "suspend", project, "--as", "steward", "--reason", "x").exit_code == 0
    result = tre("audit", "verify")
    assert result.exit_code == 0 and f"intact: {before + 2} rows" in result.output
    with session_scope(catalogue_url) as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 1).values(details={"reason": "nothing"}))
    result = tre("audit", "verify")
    assert result.exit_code == 1 and "broken at row 1" in result.output


def test_setting_up_the_demo_again_keeps_what_stewards_changed(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.delenv("TRE_DATABASE_URL", raising=False)
    first = runner.invoke(app, ["demo", "init", "--scale", "0.05"])
    assert first.exit_code == 0, first.output
    revoked = runner.invoke(app, ["projects", "revoke", "cardio-risk", "claims", "--as", "steward"])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(app, ["demo", "init", "--scale", "0.05"])
    assert again.exit_code == 0 and "loaded already" in again.output
    listing = runner.invoke(app, ["catalogue", "projects"])
    cardio = next(line for line in listing.output.splitlines() if "cardio-risk" in line)
    assert "hospital_stays" in cardio and "claims" not in cardio, listing.output


def test_the_audit_log_names_the_host_account_that_ran_the_command(tre, catalogue_url):
    result = tre("checkers", "add", "erin", "--as", "admin", "--until", "2030-12-31")
    assert result.exit_code == 0, result.output
    with session_scope(catalogue_url) as session:
        event = session.query(AuditEvent).order_by(AuditEvent.seq.desc()).first()
        assert event.actor == "admin" and event.details["via"] == "tre" and event.details["host_user"]


def test_a_grant_recorded_twice_is_refused_in_words(tre):
    args = ("projects", "grant", "cardio-risk", "beneficiaries", "--as", "steward", "--reference", "R-1",
            "--from", "2026-01-01", "--until", "2027-01-01")
    assert tre(*args).exit_code == 0
    again = tre(*args)
    assert again.exit_code != 0 and "Traceback" not in again.output
    assert "nothing was changed" in again.output or "already" in again.output, again.output


def test_listings_give_machines_whole_values(tre):
    """Piped (CliRunner is no terminal) or with --json, names and digests are whole: ``| grep`` works."""
    import json

    piped = tre("catalogue", "projects")
    assert piped.exit_code == 0, piped.output
    header, *lines = piped.output.splitlines()
    assert header.split("\t") == ["project", "status", "ends_on", "members", "datasets_in_force"]
    assert any(line.startswith("cardio-risk\t") for line in lines)
    as_json = tre("catalogue", "projects", "--json")
    rows = json.loads(as_json.output)
    assert {row["project"] for row in rows} >= {"cardio-risk", "diabetes-outcomes"}
    datasets = json.loads(tre("datasets", "list", "--json").output)
    assert datasets and all(set(row) >= {"dataset", "version", "files"} for row in datasets)
    images = tre("images", "list", "--json")
    assert images.exit_code == 0 and json.loads(images.output) == []


def test_without_tre_home_the_demo_state_is_found(monkeypatch, tmp_path):
    """After ``./setup.sh demo`` the README's ``tre audit verify`` needs no variable: the default home
    falls back to the checkout's demo folder when no production state exists; the refusal says what
    to set when neither exists."""
    from tre_core import settings as tre_settings

    monkeypatch.delenv("TRE_HOME", raising=False)
    monkeypatch.delenv("TRE_DATABASE_URL", raising=False)
    production, demo = tmp_path / "var-lib-tre", tmp_path / "checkout" / ".tre" / "demo"
    monkeypatch.setattr(tre_settings, "PRODUCTION_HOME", production)
    monkeypatch.setattr(tre_settings, "DEMO_HOME", demo)
    assert tre_settings.TRESettings().home == production
    refused = runner.invoke(app, ["audit", "verify"])
    assert refused.exit_code == 1 and "Set TRE_HOME to the folder that holds tre.sqlite" in refused.output
    demo.mkdir(parents=True)
    from datasets.schema import upgrade

    upgrade(f"sqlite:///{demo / 'tre.sqlite'}")
    assert tre_settings.TRESettings().home == demo
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 0 and "intact" in result.output, result.output
    (production).mkdir()
    (production / "tre.sqlite").touch()
    assert tre_settings.TRESettings().home == production


def test_each_group_loads_on_its_own_with_the_commands_other_packages_add():
    """`tre projects` in a fresh process has images' set-image (added through an entry point, not by
    an import that happened earlier), and `tre datasets` does not import the other groups."""
    import subprocess
    import sys

    probe = ("import sys; from tre_core.cli import app\n"
             "sys.argv = ['tre', *sys.argv[1:]]\n"
             "try:\n    app()\nexcept SystemExit:\n    pass\n"
             "print('LOADED', sorted(m for m in ('images.commands', 'hub.commands', 'package_index.commands')"
             " if m in sys.modules))")
    projects = subprocess.run([sys.executable, "-c", probe, "projects", "set-image", "--help"],
                              capture_output=True, text=True, check=True).stdout
    assert "Pin a project's workspaces to an image" in projects
    datasets = subprocess.run([sys.executable, "-c", probe, "datasets", "--help"],
                              capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in datasets and "Datasets of the catalogue" in datasets
