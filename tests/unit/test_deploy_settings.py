"""The settings the Ansible deployment relies on (ansible/roles/tre/templates/tre.env.j2): the hub's
own database in PostgreSQL, and database passwords that never reach a terminal."""

from __future__ import annotations

from tre_core.terminal import shown_url as _shown_url
from tre_core.settings import TRESettings


def test_the_hubs_database_url_is_read_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    assert TRESettings().hub_database_url is None  # the hub keeps its SQLite file in TRE_HOME
    monkeypatch.setenv("TRE_HUB_DATABASE_URL", "postgresql+psycopg://jupyterhub:pw@127.0.0.1:5432/jupyterhub")
    assert TRESettings().hub_database_url == "postgresql+psycopg://jupyterhub:pw@127.0.0.1:5432/jupyterhub"


def test_a_database_url_is_shown_without_its_password():
    shown = _shown_url("postgresql+psycopg://tre:s3cret%2F%24@127.0.0.1:5432/tre")
    assert "s3cret" not in shown and shown == "postgresql+psycopg://tre:***@127.0.0.1:5432/tre"
    assert _shown_url("sqlite:////var/lib/tre/tre.sqlite") == "sqlite:////var/lib/tre/tre.sqlite"
