"""Every input the fuzzer found crashing or hanging the checks, kept as a regression test: each now
gets a clear verdict from the checks themselves (never the runner's "engine" safety net)."""

from __future__ import annotations

from pathlib import Path

import pytest

from egress_review.checks import FAIL, REVIEW, CheckContext
from egress_review.checks.files import check_file

CRASHES = Path(__file__).resolve().parent / "crashes"
# file -> (name the researcher gave it, the verdict, words it must say)
EXPECTED = {
    "xlsx-bad-zip-member.xlsx": ("table.xlsx", FAIL, "Excel (.xlsx) file is damaged"),
    "parquet-truncated-thrift.parquet": ("table.parquet", FAIL, "Parquet file is damaged"),
    # {"results": {"results": "{}}"}}: an ACRO output that is a string, not an object
    "acro-output-not-an-object.json": ("results.json", REVIEW, "is not ACRO's output"),
}


def test_every_kept_crash_has_its_expectation():
    assert sorted(p.name for p in CRASHES.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize("crash", sorted(EXPECTED))
def test_a_crashing_input_found_by_fuzzing_is_now_a_clear_verdict(crash, tmp_path):
    name, status, words = EXPECTED[crash]
    path = tmp_path / name
    path.write_bytes((CRASHES / crash).read_bytes())
    found = check_file(path, CheckContext(name))  # no safety net: an exception fails the test
    assert [r.status for r in found] == [status] and words in found[0].summary
