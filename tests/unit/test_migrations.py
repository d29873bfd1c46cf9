"""The schema is built by migrations only, from empty to the newest and back, on both databases."""

from alembic import command
from sqlalchemy import inspect

from tre_core.db import engine_for
from datasets.schema import alembic_config, upgrade
from datasets.models import Base
import egress_review.models  # noqa: F401  (its tables are on the same Base, created by 0004)
import package_index.models  # noqa: F401  (likewise, created by 0011)


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


def test_requests_released_before_0007_get_their_release_row(catalogue_url):
    """0007's key makes a second release impossible; requests released before it get their row
    (who and when, no record digest, which was not kept then), so none looks unreleased."""
    import datetime as dt

    from sqlalchemy import text

    command.downgrade(alembic_config(catalogue_url), "0006")
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with engine_for(catalogue_url).begin() as connection:
        for state in ("released", "reviewed"):
            connection.execute(text(
                "INSERT INTO egress_requests (project_slug, author, title, state, created_at, decided_by, decided_at) "
                "VALUES ('cardio-risk', 'alice', 'Before 0007', :state, :at, 'carol', :at)"), {"state": state, "at": at})
    upgrade(catalogue_url)
    with engine_for(catalogue_url).connect() as connection:
        rows = connection.execute(text(
            "SELECT r.state, e.released_by, e.record_sha256 FROM egress_releases e "
            "JOIN egress_requests r ON r.id = e.request_id")).all()
    assert [tuple(row) for row in rows] == [("released", "carol", None)]
