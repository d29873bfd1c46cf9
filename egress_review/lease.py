"""Who is releasing a request right now: a lease held for the whole release, freed by a crash.

A release is two commits (approve, then copy out and mark released). A process killed between
them, or during the copy, leaves the request approved; nothing says whether another process is
still copying it or whether the copier is dead. The lease says so: it is a PostgreSQL session
advisory lock on the request, taken on a connection of its own before approving and held until the
request is released. PostgreSQL drops it the moment that connection ends, so a process killed with
``kill -9`` (its socket closed by the kernel) frees it at once. An approved request whose lease is
free is therefore one nobody is copying: a retry, by any checker on any replica, finishes it; one
whose lease is taken is being copied, and a second copier waits for it (then finds it released)
instead of writing the same release beside it.

On SQLite (one machine, one egress process: ``tre_core.deployment``) the lease is a lock of this
process, which dies with it just the same.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tre_core.db import engine_for

# The first key of the advisory lock: "EGRL", so the egress releases' locks meet no one else's.
NAMESPACE = 0x4547524C
_local: dict[int, threading.Lock] = {}
_local_guard = threading.Lock()


@contextmanager
def release_lease(database_url: str, request_id: int, *, wait: float = 0.0) -> Iterator[bool]:
    """Hold the release lease of ``request_id`` for the block: ``True`` if held, ``False`` if another
    process still held it after ``wait`` seconds (0: do not wait)."""
    engine = engine_for(database_url)
    if engine.dialect.name != "postgresql":
        with _local_guard:
            lock = _local.setdefault(request_id, threading.Lock())
        held = lock.acquire(timeout=wait) if wait > 0 else lock.acquire(blocking=False)
        try:
            yield held
        finally:
            if held:
                lock.release()
        return
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        held = _take(connection, request_id, wait)
        try:
            yield held
        finally:
            if held:
                try:
                    connection.execute(text("SELECT pg_advisory_unlock(:ns, :id)"), {"ns": NAMESPACE, "id": request_id})
                except DBAPIError:
                    connection.invalidate()  # the server went away: the lock went with the session
    finally:
        connection.close()


def _take(connection, request_id: int, wait: float) -> bool:
    keys = {"ns": NAMESPACE, "id": request_id}
    if wait <= 0:
        return bool(connection.scalar(text("SELECT pg_try_advisory_lock(:ns, :id)"), keys))
    connection.execute(text(f"SET lock_timeout = {int(wait * 1000)}"))
    try:
        connection.execute(text("SELECT pg_advisory_lock(:ns, :id)"), keys)
        return True
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available: still held
            return False
        raise
    finally:
        connection.execute(text("RESET lock_timeout"))
