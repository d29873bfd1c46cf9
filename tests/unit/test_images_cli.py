"""tre images and tre projects set-image as an admin meets them, without a Docker engine: what the
catalogue alone decides (refusals, listings) says why and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from datasets import images as registry
from tre_core.cli import app
from tre_core.db import session_scope
from datasets.models import AuditEvent
from images.sbom import make_sbom

runner = CliRunner()
DATA = Path(__file__).resolve().parent / "data"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def tre(catalogue_url, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    monkeypatch.setenv("COLUMNS", "200")
    with session_scope(catalogue_url) as session:
        registry.register(session, "admin", name="r", digest=DIGEST, dockerfile="FROM x\n", build_args={"BASE": "s"},
                          sbom=make_sbom("r", DIGEST, (DATA / "pip_list.json").read_text(),
                                         (DATA / "dpkg_query.txt").read_text()))
    return lambda *args: runner.invoke(app, list(args))


def test_list_and_show_read_the_registry(tre):
    listed = tre("images", "list")
    assert listed.exit_code == 0 and "r:1" in listed.output and "active" in listed.output
    shown = tre("images", "show", "r:1")
    assert "pkg:pypi/acro@1.0.2" in shown.output and "pkg:deb/debian/tini@" in shown.output
    assert "projects pinned: (none)" in shown.output


def test_refusals_say_what_to_do_and_change_nothing(tre, catalogue_url):
    with session_scope(catalogue_url) as session:  # the demo catalogue's load: one row per member and grant
        loaded = session.query(AuditEvent).where(AuditEvent.action.in_(("member.added", "grant.added"))).count()
    result = tre("images", "retire", "r", "--as", "admin")
    assert result.exit_code == 1 and "Say which version to retire: r:VERSION" in result.output
    result = tre("images", "retire", "r:1", "--as", "alice")
    assert result.exit_code == 1 and "alice is not an admin; only admins retire analysis images" in result.output
    result = tre("projects", "set-image", "cardio-risk", "python:9", "--as", "admin")
    assert result.exit_code == 1 and "There is no registered image python:9" in result.output
    result = tre("projects", "set-image", "cardio-risk", "r", "--as", "erin")
    assert result.exit_code == 1 and "erin is not an admin" in result.output
    result = tre("images", "build", "rstudio", "--as", "admin")
    assert result.exit_code == 1 and "There is no image called 'rstudio'" in result.output
    result = tre("images", "build", "singleuser", "--as", "bob")
    assert result.exit_code == 1 and "bob is not an admin; only admins build, pin and retire" in result.output
    # the registration only, after the demo catalogue load's rows (one per member and grant)
    assert tre("audit", "verify").output.strip() == f"Audit log intact: {loaded + 1} rows."
    assert tre("images", "retire", "r:1", "--as", "admin").exit_code == 0
    assert "retired" in tre("images", "list").output
