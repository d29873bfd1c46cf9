"""Engine, sessions and migrations of the TRE database (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # SQLite ignores foreign keys unless asked, and the hub, the CLI and services share the
        # file: WAL lets readers go on while a writer commits.
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=5000")
            cursor.close()

    return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed if the block succeeds, rolled back (nothing half-written) if not."""
    factory = sessionmaker(engine_for(url), expire_on_commit=False)
    with factory() as session, session.begin():
        yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database to the newest schema; a no-op when it is already there."""
    engine_for(url)  # creates the SQLite folder
    command.upgrade(alembic_config(url), "head")


def is_current(url: str) -> bool:
    """Whether the database exists and is at the newest migration (never creates anything)."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with create_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head
