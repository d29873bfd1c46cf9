"""One act of the egress review in a process of its own, for the fault tests to kill.

    python -m tests.integration.fault_actor DATABASE_URL ROOT ACT [ARGS...]

ACT is ``submit USER REQUEST``, ``review USER REQUEST FILE``, ``release USER REQUEST`` or
``resume`` (what the service does at start: finish interrupted releases, sweep the store). The
airlock is the service's own (``egress_review.logic.Airlock``) over the database, workspaces,
store and secrets under ROOT that the test set up; the test arms a fault point in this process's
environment (``tre_core.faults``) and kills it there. The outcome is printed as one JSON line.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from egress_review.logic import Airlock, Limits
from egress_review.store import Store

TODAY = dt.date(2026, 11, 23)
LIMITS = Limits(max_file_bytes=64 * 1024**2, max_request_bytes=128 * 1024**2)


def airlock_at(database_url: str, root: Path) -> Airlock:
    """The airlock every process of one fault test shares: same database, folders and clock."""
    return Airlock(database_url, workspaces_root=root / "workspaces", store=Store(root / "egress"),
                   secrets_dir=root / "secrets", limits=LIMITS, today=lambda: TODAY)


def act(airlock: Airlock, name: str, args: list[str]) -> object:
    if name == "submit":
        return airlock.submit(args[0], int(args[1]))
    if name == "review":
        return airlock.review(args[0], int(args[1]), {int(args[2]): "approve"})
    if name == "release":
        return airlock.release(args[0], int(args[1]))
    if name == "resume":
        return {"swept": airlock.sweep_store(), "resumed": airlock.resume_releases()}
    raise SystemExit(f"unknown act {name}")


def main() -> None:
    url, root, name, *args = sys.argv[1:]
    try:
        outcome = {"ok": act(airlock_at(url, Path(root)), name, args)}
    except Exception as error:  # noqa: BLE001 - the test reads what happened
        outcome = {"error": type(error).__name__, "message": str(error)}
    print(json.dumps(outcome, default=str), flush=True)


if __name__ == "__main__":
    main()
