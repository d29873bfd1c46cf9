"""Which databases a deployment may use: SQLite on one machine only, PostgreSQL past it."""

from __future__ import annotations

import pytest

from tre_core.deployment import DeploymentError, problems, require_sound_deployment
from tre_core.settings import TRESettings

PG = "postgresql+psycopg://tre:secret@db.internal:5432/tre"
HUB_PG = "postgresql+psycopg://hub:secret@db.internal:5432/hub"


def settings(tmp_path, **values) -> TRESettings:
    return TRESettings(home=tmp_path, **values)


def test_one_machine_runs_on_sqlite(tmp_path):
    require_sound_deployment(settings(tmp_path))
    assert settings(tmp_path).hub_db_url == f"sqlite:///{tmp_path / 'jupyterhub.sqlite'}"


def test_the_hub_database_comes_from_its_setting(tmp_path):
    assert settings(tmp_path, hub_database_url=HUB_PG).hub_db_url == HUB_PG


def test_multi_host_on_sqlite_is_refused_naming_both_settings_and_hiding_passwords(tmp_path):
    with pytest.raises(DeploymentError) as refused:
        require_sound_deployment(settings(tmp_path, deployment="multi-host"))
    message = str(refused.value)
    assert "TRE_DATABASE_URL names sqlite" in message and "TRE_HUB_DATABASE_URL names sqlite" in message
    assert "postgresql+psycopg://" in message  # what to set instead
    found = problems(settings(tmp_path, deployment="multi-host", database_url=PG))
    assert len(found) == 1 and "TRE_HUB_DATABASE_URL" in found[0]
    found = problems(settings(tmp_path, deployment="multi-host", database_url="mysql://u:hunter2@h/tre",
                              hub_database_url=HUB_PG))
    assert len(found) == 1 and "hunter2" not in found[0] and "mysql" in found[0]


def test_multi_host_on_postgresql_starts(tmp_path):
    require_sound_deployment(settings(tmp_path, deployment="multi-host", database_url=PG, hub_database_url=HUB_PG))


def test_egress_replicas_need_postgresql_for_the_tre_database(tmp_path):
    with pytest.raises(DeploymentError, match="TRE_EGRESS_REPLICAS=2 needs PostgreSQL"):
        require_sound_deployment(settings(tmp_path, egress_replicas=2))
    require_sound_deployment(settings(tmp_path, egress_replicas=2, database_url=PG))


def test_a_bad_deployment_name_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="single-host"):
        settings(tmp_path, deployment="cluster")


def test_the_hub_refuses_to_start_multi_host_on_sqlite(tmp_path):
    """The real hub reading the real configuration stops with the message and writes no SQLite file."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    config = Path(__file__).resolve().parents[2] / "jupyterhub_config.py"
    run = subprocess.run([Path(sys.executable).parent / "jupyterhub", "-f", str(config)],
                         env={**os.environ, "TRE_HOME": str(tmp_path), "TRE_DEPLOYMENT": "multi-host"},
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode != 0
    assert "TRE_DEPLOYMENT=multi-host needs PostgreSQL" in run.stderr
    assert not (tmp_path / "jupyterhub.sqlite").exists()
