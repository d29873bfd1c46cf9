"""The schema is built by migrations only, from empty to the newest and back, on both databases."""

from alembic import command
from sqlalchemy import inspect

from datasets.db import alembic_config, engine_for, upgrade
from datasets.models import Base
import egress_review.models  # noqa: F401  (its tables are on the same Base, created by 0004)


def tables(url: str) -> set[str]:
    return set(inspect(engine_for(url)).get_table_names()) - {"alembic_version"}


def test_migrations_reach_the_models_and_go_back(database_url):
    upgrade(database_url)
    assert tables(database_url) == set(Base.metadata.tables)
    command.downgrade(alembic_config(database_url), "base")
    assert tables(database_url) == set()
    upgrade(database_url)
    assert tables(database_url) == set(Base.metadata.tables)


def test_models_and_migrations_agree(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(database_url)
    with engine_for(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []
