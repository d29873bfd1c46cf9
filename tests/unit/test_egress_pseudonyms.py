"""The egress review's identifier-leak scan knows what a project's outputs could leak: the database
person keys of its datasets (tagged in the catalogue or not) and its own pseudonyms, read from its
extracts; another project's pseudonyms are not its concern (and differencing, likewise, compares
only with the same project's releases)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from datasets.models import Dataset, Extract, ExtractStatus
from egress_review import submission
from egress_review.checks import FAIL, PASS
from egress_review.checks.identifiers import scan_result
from egress_review.store import Store
from tre_core.db import session_scope

TODAY = dt.date(2026, 11, 23)
OURS, THEIRS = 4611686018427387903, 777777777777777777


def extract(root: Path, project: str, pseudonyms: list[int]) -> str:
    folder = root / project / "claims@2024.1" / "claims"
    folder.mkdir(parents=True)
    pd.DataFrame({"person_id": pseudonyms, "atc_code": ["N02BE01"] * len(pseudonyms)}).to_parquet(
        folder / "part-0.parquet")
    return f"{project}/claims@2024.1"


def test_the_scan_covers_the_projects_pseudonyms_and_the_database_keys(catalogue_url, tmp_path):
    data, extracts = tmp_path / "data", tmp_path / "extracts"
    pd.DataFrame({"patient_id": ["P0000042", "P0000043"], "value": [1, 2]}).to_parquet(data / "claims" / "claims.parquet")
    now = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
    with session_scope(catalogue_url) as session:
        session.get(Dataset, "claims").columns = []  # untagged: the person key is indexed all the same
        for project, pseudonyms, digit in (("cardio-risk", [OURS, -12345678901234567], "a"),
                                           ("diabetes-outcomes", [THEIRS], "b")):
            session.add(Extract(project_id=project, dataset_version_id="claims@2024.1", spec_digest="0" * 64,
                                status=ExtractStatus.READY, progress=100, created_at=now, finished_at=now,
                                path=extract(extracts, project, pseudonyms), root_hash=digit * 64))
    store = Store(tmp_path / "egress")
    with session_scope(catalogue_url) as session:
        inputs = submission.inputs(session, "cardio-risk", TODAY, store)
    assert inputs.extracts == (("cardio-risk/claims@2024.1", "a" * 64),)
    checker = submission.Checker(store, data, tmp_path / "cache", extracts)
    notes, context = checker.context(inputs)
    assert notes == []
    found = context.identifiers.contains([str(OURS), "-12345678901234567", "P0000042", str(THEIRS), "42"])
    assert found.tolist() == [True, True, True, False, False]
    leaking = tmp_path / "by_person.csv"
    leaking.write_text(f"person_id,stays\n{OURS},3\n")
    assert scan_result(context.identifiers, leaking).status == FAIL
    safe = tmp_path / "by_region.csv"
    safe.write_text("region,stays\n11,42\n")
    assert scan_result(context.identifiers, safe).status == PASS
    # Without the extracts root (the control), the pseudonyms are not known: the probe above is real.
    _, blind = submission.Checker(store, data, tmp_path / "cache-2", None).context(inputs)
    assert blind.identifiers.contains([str(OURS), "P0000042"]).tolist() == [False, True]


def test_differencing_compares_with_the_same_projects_releases_only(catalogue_url, tmp_path):
    from tests.unit.egress_fixtures import make_airlock, submitted_request

    airlock = make_airlock(catalogue_url, tmp_path)
    request = submitted_request(airlock)
    for checker in ("carol", "dave"):
        table = next(f.id for f in airlock.get("alice", request).files if f.name == "table.csv")
        airlock.review(checker, request, {table: "approve"})
    assert airlock.release("carol", request) == ["table.csv"]
    with session_scope(catalogue_url) as session:
        ours = submission.inputs(session, "cardio-risk", TODAY, airlock.store)
        theirs = submission.inputs(session, "diabetes-outcomes", TODAY, airlock.store)
    assert [r.name for r in ours.released] == ["table.csv"]  # the probe: releases are found
    assert theirs.released == ()  # another project's releases are not compared with
