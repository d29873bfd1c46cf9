"""The checks' fast paths give what the slow ones did: pivot tables equal to pandas' and flagged
as ACRO flags them (ties, several dominant rows, N above 2, negatives), and the identifier index
built incrementally, batch by batch across a partitioned dataset, equal to the one built at once."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import acro as acro_module  # in requirements.lock: installed by the test command, never skipped
from egress_review.checks.from_data import pivot_table
from egress_review.checks.identifiers import IdentifierIndex
from egress_review.checks.params import Params

RULES = {"MinimumThresholdCheck": "threshold", "PresenceOfZeroCheck": "zeros", "NKCheck": "nk-rule",
         "PPercentCheck": "p-ratio"}


def skewed(seed: int, n: int = 4000) -> pd.DataFrame:
    """Small and empty cells, cells dominated by one or two rows, ties among the largest, missing amounts."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"region": rng.choice(["11", "24", "32", "84", "94"], n, p=[.4, .3, .2, .095, .005]),
                         "band": rng.choice(["0-17", "18-64", "65+", "unknown"], n, p=[.3, .4, .295, .005]),
                         "amount": rng.exponential(100, n).round(0)})  # rounded: many equal contributions
    data.loc[rng.choice(n, 6, replace=False), "amount"] = 1e6  # dominant rows, some in the same cell
    data.loc[rng.choice(n, 3, replace=False), "amount"] = np.nan
    return data


def acro_flags(acro) -> dict[str, set[tuple[int, int]]]:
    record = list(acro.results.results.values())[-1]
    return {RULES[name]: {tuple(c) for c in cells} for name, cells in record.sdc["cells"].items()
            if name in RULES and cells}


@pytest.fixture
def acro(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return acro_module.ACRO(suppress=False)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("aggfunc", ["mean", "sum"])
def test_pivot_table_equals_pandas_and_flags_what_acro_flags(acro, seed, aggfunc):
    data = skewed(seed)
    mine = pivot_table(data, "region", "band", "amount", aggfunc)
    theirs = pd.pivot_table(data, index="region", columns="band", values="amount", aggfunc=aggfunc)
    pd.testing.assert_frame_equal(mine.table, theirs.reindex_like(mine.table), check_names=False, rtol=1e-12)
    acro.pivot_table(data, index="region", columns="band", values="amount", aggfunc=aggfunc)
    assert {k: set(v) for k, v in mine.flags.items() if v} == acro_flags(acro)
    assert mine.flags["threshold"] and mine.flags["nk-rule"]  # not vacuous


def test_dominance_with_n_above_two_and_ties_matches_a_sort():
    """N = 3: the three largest per cell, equal values counted as often as they occur (a tie for
    the largest is two contributions, not one) — checked against sorting each cell by hand."""
    data = pd.DataFrame({"r": ["a"] * 5 + ["b"] * 4, "c": ["x"] * 9,
                         "v": [50.0, 50.0, 1.0, 1.0, 1.0, 10.0, 10.0, 10.0, 70.0]})
    params = Params(nk_n=3, nk_k=0.9)
    mine = pivot_table(data, "r", "c", "v", "sum", params)
    expected_nk, expected_p = set(), set()
    for row, (_, group) in enumerate(data.groupby("r")):
        values = sorted(group.v, reverse=True)
        if sum(values[:3]) >= 0.9 * sum(values):
            expected_nk.add((row, 0))
        if (sum(values) - sum(values[:2])) / values[0] < params.p_ratio:
            expected_p.add((row, 0))
    assert set(mine.flags["nk-rule"]) == expected_nk == {(0, 0), (1, 0)}
    assert set(mine.flags["p-ratio"]) == expected_p == {(0, 0)}


def test_negative_contributions_send_the_table_to_review():
    data = skewed(4)
    data.loc[10, "amount"] = -5.0
    mine = pivot_table(data, "region", "band", "amount", "mean")
    assert mine.flags["negative"] and "nk-rule" not in mine.flags and "p-ratio" not in mine.flags


def partitioned(folder, people: int = 900, rows_per_file: int = 700, files: int = 12) -> pd.DataFrame:
    """A claims-like table in year=/month= partitions, files cut in small row groups; returns all rows."""
    rng = np.random.default_rng(5)
    ids = np.array([f"{i:016x}" for i in rng.integers(0, 2**62, people)])
    frames = []
    for n in range(files):
        frame = pd.DataFrame({"patient_id": rng.choice(ids, rows_per_file),
                              "care_date": [dt.date(2022, 1, 1) + dt.timedelta(days=int(d))
                                            for d in rng.integers(0, 730, rows_per_file)],
                              "amount": rng.exponential(20, rows_per_file)})
        frame.loc[rng.choice(rows_per_file, 5, replace=False), "patient_id"] = None
        part = folder / f"year={2022 + n % 2}" / f"month={n // 2 + 1:02d}"
        part.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), part / "part-0.parquet", row_group_size=128)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_incremental_index_equals_the_index_built_at_once(tmp_path):
    rows = partitioned(tmp_path / "claims")
    sources = [(p, ["patient_id", "care_date"]) for p in sorted((tmp_path / "claims").rglob("*.parquet"))]
    at_once = IdentifierIndex.of_values([*rows.patient_id.dropna(), *rows.care_date])
    # a run of 50 values: hundreds of runs and merges over 12 files of 6 row groups each
    incremental = IdentifierIndex.from_parquet(sources, run=50)
    assert sorted(incremental.values.to_pylist()) == sorted(at_once.values.to_pylist())
    assert len(incremental) == rows.patient_id.nunique() + 2 * rows.care_date.nunique()
    # the order does not depend on how the values were gathered: same index, run size aside
    assert incremental.values.to_pylist() == IdentifierIndex.from_parquet(sources).values.to_pylist()
    some_id, some_day = rows.patient_id.dropna().iloc[0], rows.care_date.iloc[0]
    assert incremental.contains([some_id, some_day.strftime("%d/%m/%Y"), "not-an-id"]).tolist() == [True, True, False]
