"""The TRE database's schema: the catalogue's Alembic migrations, applied and checked."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine

from tre_core.db import engine_for

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database to the newest schema; a no-op when it is already there."""
    engine_for(url)  # creates the SQLite folder
    command.upgrade(alembic_config(url), "head")


_current: set[str] = set()  # databases found at the newest migration by this process


def is_current(url: str) -> bool:
    """Whether the database exists and is at the newest migration (never creates anything).
    A database found current stays so for the process (a command asks several times, and each
    time read the migration scripts); one that was not is asked again."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if url in _current:
        return True
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return False
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with create_engine(url).connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() != head:
            return False
    _current.add(url)
    return True
