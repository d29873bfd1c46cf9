"""A PostgreSQL cluster of the test's own, in a temp folder, started and stopped with ``pg_ctl``.

The fault tests restart and stop the database under a running service; they do it to this
cluster, never to the shared one other tests and helpers use. Run as root (the test machine's
CI), the cluster belongs to the ``postgres`` account, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.integration.conftest import free_port

USER = "tre_test"


class PrivatePostgres:
    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="tre-fault-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self._as = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--no-sync")
        self.start()

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as, *command], check=True, capture_output=True, cwd=self.folder)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        """Stop now (``-m fast``: every session is ended, its transaction rolled back)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        subprocess.run([*self._as, "pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, cwd=self.folder)
        shutil.rmtree(self.folder, ignore_errors=True)
