"""A real TRE database with the demo catalogue, a project workspace on disk and an Airlock over them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tre_core.db import session_scope
from datasets.models import Person
from egress_review.logic import Airlock, Limits
from egress_review.store import Store

TODAY = dt.date(2026, 11, 23)
TABLE = "region,readmissions\n11,42\n84,37\n"


def make_airlock(catalogue_url: str, tmp_path: Path, **kwargs) -> Airlock:
    workspaces = tmp_path / "workspaces"
    for project in ("cardio-risk", "diabetes-outcomes"):
        (workspaces / project / "shared" / "outputs").mkdir(parents=True, exist_ok=True)
    (workspaces / "cardio-risk" / "shared" / "outputs" / "table.csv").write_text(TABLE)
    (workspaces / "cardio-risk" / "shared" / "outputs" / "code.py").write_text("print('hello')\n")
    with session_scope(catalogue_url) as session:  # a checker who is also a member, for the matrix
        session.get(Person, "erin").checker_accredited_until = dt.date(2027, 12, 31)
    kwargs.setdefault("limits", Limits(max_file_bytes=10_000, max_request_bytes=15_000))
    return Airlock(catalogue_url, workspaces_root=workspaces, store=Store(tmp_path / "egress"),
                   secrets_dir=tmp_path / "secrets", today=lambda: TODAY, **kwargs)


def submitted_request(airlock: Airlock, *, supporting: bool = True) -> int:
    request = airlock.create("alice", "cardio-risk", "Readmissions by region")
    airlock.add_file("alice", request, "outputs/table.csv", "Table 1", "output",
                     context="Readmissions within a year, by region", controls="Counts under 10 suppressed")
    if supporting:
        airlock.add_file("alice", request, "outputs/code.py", "Table 1", "supporting")
    airlock.submit("alice", request)
    return request
