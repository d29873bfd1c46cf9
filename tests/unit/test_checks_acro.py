"""Agreement with ACRO (run for real): the same tables, the same flagged cells, and ACRO's own
results.json read and shown with the same verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egress_review.checks import FAIL, CheckContext, run_checks
from egress_review.checks.from_data import crosstab, pivot_table

import acro as acro_module  # noqa: E402 - in requirements.lock: installed by the test command, never skipped

RULES = {"MinimumThresholdCheck": "threshold", "PresenceOfZeroCheck": "zeros", "NKCheck": "nk-rule",
         "PPercentCheck": "p-ratio"}


@pytest.fixture
def rows() -> pd.DataFrame:
    """Skewed categories (so some cells are small or empty) and one dominant amount."""
    rng = np.random.default_rng(7)
    n = 3000
    data = pd.DataFrame({"region": rng.choice(["11", "24", "32", "84"], n, p=[.5, .3, .197, .003]),
                         "sex": rng.choice(["F", "M", "X"], n, p=[.5, .49, .01]),
                         "amount": rng.exponential(100, n)})
    data.loc[0, "amount"] = 1e6  # one contributor dominates its cell
    return data


def acro_flags(acro) -> dict[str, set[tuple[int, int]]]:
    record = list(acro.results.results.values())[-1]
    return {RULES[name]: {tuple(c) for c in cells} for name, cells in record.sdc["cells"].items() if name in RULES}


def ours(check) -> dict[str, set[tuple[int, int]]]:
    return {rule: set(cells) for rule, cells in check.flags.items()}


@pytest.fixture
def acro(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return acro_module.ACRO(suppress=False)


def test_crosstab_counts_agree(acro, rows):
    theirs = acro.crosstab(rows.region, rows.sex)
    mine = crosstab(rows.region, rows.sex)
    assert mine.table.to_numpy().tolist() == theirs.to_numpy().tolist()
    assert ours(mine) == {k: v for k, v in acro_flags(acro).items()}
    assert mine.flags["threshold"]  # the test is not vacuous


@pytest.mark.parametrize("aggfunc", ["mean", "sum", "count"])
def test_pivot_tables_agree(acro, rows, aggfunc):
    theirs = acro.pivot_table(rows, index="region", columns="sex", values="amount", aggfunc=aggfunc)
    mine = pivot_table(rows, "region", "sex", "amount", aggfunc)
    np.testing.assert_allclose(mine.table.fillna(-1).to_numpy(), theirs.fillna(-1).to_numpy(), rtol=1e-9)
    expected = acro_flags(acro)
    got = ours(mine)
    assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
    assert got["threshold"]


def test_file_rules_agree_with_acro_on_its_own_crosstab(acro, rows, tmp_path):
    """ACRO's crosstab written as CSV by pandas: our file rules flag the same cells (threshold + zeros)."""
    table = acro.crosstab(rows.region, rows.sex)
    table.to_csv(tmp_path / "t.csv")
    found = {r.rule: r for r in run_checks(tmp_path / "t.csv", CheckContext("t.csv"))}
    # pandas writes one header line ("region,F,M,X") and the labels in column 0.
    ours_cells = {(c["row"] - 1, c["col"] - 1) for rule in ("threshold", "zeros") if rule in found
                  for c in found[rule].details["cells"]}
    theirs = acro_flags(acro)
    assert ours_cells == theirs["threshold"] | theirs.get("zeros", set())


def test_acro_results_json_is_read_and_its_verdicts_agree(acro, rows, tmp_path):
    acro.crosstab(rows.region, rows.sex)
    acro.pivot_table(rows, index="region", columns="sex", values="amount", aggfunc="mean")
    acro.finalise(str(tmp_path / "acro_out"), "json")
    results_json = next(Path(tmp_path / "acro_out").rglob("results.json"))
    found = {r.details["acro_uid"]: r for r in run_checks(results_json, CheckContext("results.json"))
             if r.rule == "acro"}
    assert found["output_0"].status == found["output_1"].status == FAIL
    # ACRO's cells for its crosstab are the ones our engine flags on the same rows.
    theirs = {RULES[k]: {tuple(c) for c in v} for k, v in found["output_0"].details["acro_cells"].items()}
    assert theirs == ours(crosstab(rows.region, rows.sex))
    assert crosstab(rows.region, rows.sex).status == FAIL


@pytest.mark.parametrize("text", [
    '{"results": {"results": "{}}"}}',  # an output that is a string (found by fuzzing)
    '{"results": {"a": {"files": [{"sdc": {"cells": {"threshold": 3}}}]}}}',  # positions not a list
    '{"results": {"a": {"files": "x"}}}',
    '{"results": {"a": 1' + "0" * 5000 + '}}',  # past Python's digit limit: a ValueError, not a JSON error
    '{"results": ' + "[" * 100_000 + "]" * 100_000 + "}",  # nested past the recursion limit
])
def test_a_results_json_not_shaped_as_acros_goes_to_a_checker_without_an_exception(text, tmp_path):
    from egress_review.checks import REVIEW
    from egress_review.checks.acro_results import check_results_json

    path = tmp_path / "results.json"
    path.write_text(text)
    found = check_results_json(path, CheckContext("results.json"))  # no safety net here
    assert [r.status for r in found] == [REVIEW] and "not ACRO's output" in found[0].summary
