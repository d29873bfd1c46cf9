"""The scrubber finds what the pre-mount check cannot (a write in place that keeps size, inode
and modification time), suspends the version, audits it, and the next start is refused."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from datasets.access import AccessRefused
from datasets.access import Refusal
from datasets.access import workspace_access
from tre_core.cli import app
from tre_core.db import session_scope
from datasets.integrity import verify_dataset_folder
from datasets.manifest import hashed_so_far
from datasets.models import AuditEvent, DatasetVersion, VersionStatus
from datasets.scrub import Throttle, scrub_versions
from tre_core.settings import TRESettings


@pytest.fixture
def settings(catalogue_url, tmp_path, monkeypatch) -> TRESettings:
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    return TRESettings()


def tamper_in_place(path: Path) -> None:
    """Flip one byte, keep size, inode and modification time: invisible without reading."""
    info = path.stat()
    os.chmod(path, 0o644)
    with open(path, "r+b") as stream:
        stream.seek(info.st_size // 2)
        byte = stream.read(1)
        stream.seek(info.st_size // 2)
        stream.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.chmod(path, 0o444)


def test_scrub_suspends_a_version_changed_in_place(settings):
    with session_scope(settings.catalogue_url) as session:
        files = session.get(DatasetVersion, ("claims", "2024.1")).files
    path = settings.data_root / "claims" / "claims.parquet"
    tamper_in_place(path)
    before = hashed_so_far()
    verify_dataset_folder("claims", settings.data_root, settings.data_root / "claims", files)  # reads nothing
    assert hashed_so_far() == before
    results = {r.slug: r for r in scrub_versions(settings)}
    assert results["hospital_stays"].ok and not results["claims"].ok
    assert "claims.parquet does not match its registered sha256" in results["claims"].summary
    with session_scope(settings.catalogue_url) as session:
        version = session.get(DatasetVersion, ("claims", "2024.1"))
        assert version.status is VersionStatus.SUSPENDED and version.scrubbed_at is not None
        row = session.scalars(select(AuditEvent).where(AuditEvent.action == "dataset.suspended")).one()
        assert row.actor == "scrubber" and row.details["dataset"] == "claims"
        with pytest.raises(AccessRefused) as refused:
            workspace_access(session, "alice", "cardio-risk", dt.date(2026, 6, 1))
        assert refused.value.reason is Refusal.DATASET_SUSPENDED
    assert [r.slug for r in scrub_versions(settings)] == ["beneficiaries", "cohort", "hospital_stays",
                                                            "referentials"]  # the suspended one is left


def test_the_command_says_what_it_found_and_fails(settings):
    runner = CliRunner()
    assert runner.invoke(app, ["datasets", "scrub"]).exit_code == 0
    tamper_in_place(settings.data_root / "beneficiaries" / "beneficiaries.parquet")
    result = runner.invoke(app, ["datasets", "scrub", "beneficiaries"])
    assert result.exit_code == 2 and "beneficiaries 2024.1: SUSPENDED" in result.output


def test_retire_and_show(settings):
    runner = CliRunner()
    result = runner.invoke(app, ["datasets", "retire", "claims", "2024.1", "--as", "steward"])
    assert result.exit_code == 0, result.output
    shown = runner.invoke(app, ["datasets", "show", "claims"]).output
    assert "2024.1 retired" in shown and "granted to cardio-risk, diabetes-outcomes" in shown
    again = runner.invoke(app, ["datasets", "retire", "claims", "2024.1", "--as", "steward"])
    assert again.exit_code == 1 and "retired already" in again.output


def test_the_throttle_keeps_the_rate():
    slept = []
    throttle = Throttle(10.0, sleep=slept.append)
    for _ in range(10):
        throttle(10_000_000)  # 100 MB at 10 MB/s: about ten seconds of sleeping in all
    assert 9.0 < slept[-1] <= 10.0


def test_a_pass_with_a_due_date_skips_versions_scrubbed_since(settings):
    import datetime as dt

    assert len(scrub_versions(settings)) == 5
    later = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert scrub_versions(settings, due_before=later) == []
    assert len(scrub_versions(settings, due_before=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))) == 5
