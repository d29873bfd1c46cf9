"""Shared fixtures: a catalogue database loaded from the demo YAML, over small dataset folders,
on SQLite and on PostgreSQL (the server ``./setup.sh test`` starts on 127.0.0.1)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from datasets import catalogue as cat
from demo.commands import DEMO_CATALOGUE
from tre_core.db import session_scope
from datasets.schema import upgrade


@pytest.fixture(autouse=True)
def _fresh_process_context():
    """What a ``tre`` command adds to every audit row of its process (tre_core.process) ends with the
    test, as it ends with the command's process in real life."""
    from tre_core import process

    yield
    process._context.clear()


def make_dataset_folders(data_root: Path) -> None:
    """Stand-in dataset folders for tests that need the catalogue but not the demo's data."""
    import pandas as pd

    for slug in ("beneficiaries", "claims", "hospital_stays", "referentials", "cohort"):
        folder = data_root / slug
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"patient_id": ["a", "b"], "value": [1, 2]}).to_parquet(folder / f"{slug}.parquet")


POSTGRES_ADMIN_URL = os.environ.get(
    "TRE_TEST_POSTGRES_URL", "postgresql+psycopg://tre_test:tre_test@127.0.0.1:5432/postgres")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> Iterator[str]:
    """An empty TRE database of each kind; the PostgreSQL one is a fresh database per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'tre.sqlite'}"
        return
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"tre_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no skip: the suite needs both databases
        pytest.fail(f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({exc}); "
                    "run ./setup.sh test, which installs and starts it.")
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from tre_core.db import engine_for

        engine_for(url).dispose()
        engine_for.cache_clear()
        drop_database(admin, name)
        admin.dispose()


def drop_database(admin, name: str) -> None:
    """Drop a test database. FORCE ends the test's own leftover connections, but refuses when an
    autovacuum worker (a superuser's process) happens to be in the fresh database; a plain DROP
    cancels such a worker itself, but may find it still there for a moment: so both, a few times."""
    import time

    from sqlalchemy.exc import OperationalError, ProgrammingError

    for attempt in range(20):
        for statement in (f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'DROP DATABASE IF EXISTS "{name}"'):
            try:
                with admin.connect() as connection:
                    connection.execute(text(statement))
                return
            except (ProgrammingError, OperationalError):
                if attempt == 19 and "FORCE" not in statement:
                    raise
        time.sleep(0.25)


@pytest.fixture
def catalogue_url(database_url: str, tmp_path: Path) -> str:
    url = database_url
    upgrade(url)
    make_dataset_folders(tmp_path / "data")
    with session_scope(url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), tmp_path / "data")
    return url
