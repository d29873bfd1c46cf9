"""Issue 19, item 7: a project closed for longer than its retention period has its /project, homes
and frozen egress files archived (sealed, with a manifest) then wiped, each step audited; the public
register keeps it; `tre projects restore` puts the files back, byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from datasets import workflow
from tre_core.cli import app
from tre_core.db import session_scope
from datasets.models import AuditEvent, Project, ProjectStatus
from datasets.sealed import OpeningReader, SealError, SealingWriter, load_key
from hub.catalogue_service.queries import public_register
from tests.unit.egress_fixtures import make_airlock, submitted_request

runner = CliRunner()


def test_sealing_round_trips_and_detects_a_change_a_cut_and_another_key(tmp_path):
    key, other = os.urandom(32), os.urandom(32)
    plain = os.urandom(3 * (1 << 20) + 123)
    sealed = io.BytesIO()
    with SealingWriter(sealed, key) as writer:
        writer.write(plain)
    blob = sealed.getvalue()
    assert plain[:64] not in blob
    assert OpeningReader(io.BytesIO(blob), key).readall() == plain
    changed = bytearray(blob)
    changed[(1 << 20) + 100] ^= 1
    for bad, with_key in ((bytes(changed), key), (blob[: 15 + (1 << 20) + 16], key), (blob, other)):
        with pytest.raises(SealError):
            OpeningReader(io.BytesIO(bad), with_key).readall()
    with pytest.raises(SealError, match="missing"):
        load_key(tmp_path / "absent.key")
    made = load_key(tmp_path / "secrets" / "archive.key", create=True)
    assert len(made) == 32 and (tmp_path / "secrets" / "archive.key").stat().st_mode & 0o077 == 0


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def tre(catalogue_url, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    monkeypatch.setenv("TRE_PROJECT_RETENTION_DAYS", "90")
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def close(url: str, slug: str, on: dt.date) -> None:
    """Close through the workflow (which dates it today), then pretend that was on ``on``."""
    with session_scope(url) as session:
        project = workflow.set_status(session, "steward", slug, ProjectStatus.CLOSED, reason="study finished")
        assert project.closed_on == dt.date.today()
        project.closed_on = on


def actions(url: str, slug: str) -> list[str]:
    with session_scope(url) as session:
        return [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.project == slug)
                                                  .order_by(AuditEvent.seq))]


def test_an_expired_project_is_archived_wiped_and_restored(tre, catalogue_url, tmp_path):
    airlock = make_airlock(catalogue_url, tmp_path)  # cardio-risk's /project, and a frozen export request
    request = submitted_request(airlock)
    workspace = tmp_path / "workspaces" / "cardio-risk"
    (workspace / "homes" / "alice").mkdir(parents=True)
    (workspace / "homes" / "alice" / "analysis.ipynb").write_text('{"cells": []}')
    (workspace / "shared" / "big.bin").write_bytes(os.urandom(2_500_000))
    os.symlink("big.bin", workspace / "shared" / "latest")
    frozen = {f.sha256 for f in airlock.get("alice", request).files}
    store = tmp_path / "egress" / "store"
    before = digests(workspace)
    before_store = {sha: hashlib.sha256((store / sha).read_bytes()).hexdigest() for sha in frozen}
    assert set(before_store) == set(before_store.values())  # content-addressed

    close(catalogue_url, "cardio-risk", dt.date(2026, 1, 10))
    result = tre("projects", "archive-expired", "--today", "2026-04-10")  # 90 days: not yet
    assert result.exit_code == 0 and "No closed project is past its retention period" in result.output
    assert workspace.is_dir()

    result = tre("projects", "archive-expired", "--today", "2026-04-11")
    assert result.exit_code == 0, result.output
    assert "cardio-risk: 6 files" in result.output  # table.csv, code.py, the notebook, big.bin; 2 frozen
    assert not workspace.exists() and not any((store / sha).exists() for sha in frozen)
    (archive,) = (tmp_path / "archives").iterdir()
    sealed = (archive / "files.tar.sealed").read_bytes()
    assert b"analysis.ipynb" not in sealed and b'{"cells": []}' not in sealed  # sealed, names included
    assert actions(catalogue_url, "cardio-risk")[-2:] == ["project.archived", "project.wiped"]
    with session_scope(catalogue_url) as session:
        assert "cardio-risk" in [entry.slug for entry in public_register(session)]
        assert session.get(Project, "cardio-risk").archived_at is not None
    assert tre("projects", "archive-expired", "--today", "2026-04-12").output.startswith("No closed project")

    result = tre("projects", "restore", "cardio-risk", str(archive), "--as", "alice")
    assert result.exit_code == 1 and "alice is not a data steward" in result.output
    result = tre("projects", "restore", "cardio-risk", str(archive), "--as", "steward")
    assert result.exit_code == 0, result.output
    assert digests(workspace) == before
    assert os.readlink(workspace / "shared" / "latest") == "big.bin"
    assert {sha: hashlib.sha256((store / sha).read_bytes()).hexdigest() for sha in frozen} == before_store
    assert actions(catalogue_url, "cardio-risk")[-1] == "project.restored"


def test_a_changed_archive_is_not_restored_and_nothing_is_written(tre, catalogue_url, tmp_path):
    make_airlock(catalogue_url, tmp_path)
    close(catalogue_url, "cardio-risk", dt.date(2026, 1, 10))
    assert tre("projects", "archive-expired", "--today", "2026-12-01").exit_code == 0
    (archive,) = (tmp_path / "archives").iterdir()
    sealed = archive / "files.tar.sealed"
    blob = bytearray(sealed.read_bytes())
    blob[40] ^= 1
    sealed.write_bytes(bytes(blob))
    result = tre("projects", "restore", "cardio-risk", str(archive), "--as", "steward")
    assert result.exit_code == 1 and "is not the file that was archived" in result.output
    assert not (tmp_path / "workspaces" / "cardio-risk").exists()


def test_a_project_not_closed_keeps_its_files(tre, catalogue_url, tmp_path):
    make_airlock(catalogue_url, tmp_path)
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").ends_on = dt.date(2020, 1, 1)  # ended, but not closed
    assert tre("projects", "archive-expired", "--today", "2026-12-01").exit_code == 0
    assert (tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs" / "table.csv").exists()
    result = tre("projects", "archive", "cardio-risk", "--as", "steward")
    assert result.exit_code == 1 and "is not closed" in result.output


def test_a_project_of_its_own_retention_period_is_archived_when_that_ends(tre, catalogue_url, tmp_path):
    make_airlock(catalogue_url, tmp_path)
    result = tre("projects", "set-retention", "cardio-risk", "30", "--as", "bob")
    assert result.exit_code == 1 and "bob is not a data steward" in result.output
    assert tre("projects", "set-retention", "cardio-risk", "-1", "--as", "steward").exit_code != 0
    result = tre("projects", "set-retention", "cardio-risk", "30", "--as", "steward")
    assert result.exit_code == 0 and "kept 30 days" in result.output
    close(catalogue_url, "cardio-risk", dt.date(2026, 1, 10))
    assert tre("projects", "archive-expired", "--today", "2026-02-09").output.startswith("No closed project")
    assert "cardio-risk: 2 files" in tre("projects", "archive-expired", "--today", "2026-02-10").output
