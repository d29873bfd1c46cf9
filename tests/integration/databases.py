"""Fresh PostgreSQL databases on the test server (``TRE_TEST_POSTGRES_URL``), for a hub run as the
Ansible deployment runs it: its own state and the TRE's catalogue in PostgreSQL, not SQLite files.
Used by the multi-host tests and by the load benchmark."""

from __future__ import annotations

import secrets

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_ADMIN_URL, drop_database
from tre_core.db import engine_for


class Databases:
    """Two fresh PostgreSQL databases, the hub's and the TRE's, dropped by ``drop``."""

    def __init__(self) -> None:
        self.admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        tag = secrets.token_hex(4)
        self.names = {"hub": f"tre_hub_{tag}", "tre": f"tre_catalogue_{tag}"}
        with self.admin.connect() as connection:
            for name in self.names.values():
                connection.execute(text(f'CREATE DATABASE "{name}"'))

    def url(self, which: str) -> str:
        return make_url(POSTGRES_ADMIN_URL).set(database=self.names[which]).render_as_string(hide_password=False)

    def drop(self) -> None:
        for which, name in self.names.items():
            engine_for(self.url(which)).dispose()
            drop_database(self.admin, name)
        self.admin.dispose()
