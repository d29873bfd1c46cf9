"""``check`` in a notebook: the table with its flagged cells highlighted, in the reader's language."""

from __future__ import annotations

from bs4 import BeautifulSoup

from egress_review.checks.notebook import MAX_ROWS, check


def test_a_failing_count_is_the_highlighted_cell_of_the_table(tmp_path):
    table = tmp_path / "patients.csv"
    table.write_text("region,patients\nBretagne,3\nOccitanie,41\n")
    report = check(table, language="en")
    assert report.outcome == "fail"
    html = BeautifulSoup(report._repr_html_(), "html.parser")
    assert html.select_one(".tre-check")["data-outcome"] == "fail"
    flagged = html.select("td[data-flagged]")
    assert [(cell.get_text(), cell["data-flagged"], cell["title"]) for cell in flagged] == [("3", "fail", "threshold")]
    assert [th.get_text() for th in html.select("tr")[1].select("th")] == ["Bretagne"]  # the row's label
    assert "threshold" in str(report) and "FAIL" in str(report)


def test_in_french_and_a_long_table_is_cut_with_a_note(tmp_path):
    table = tmp_path / "long.csv"
    table.write_text("region,patients\n" + "".join(f"r{i},{100 + i}\n" for i in range(MAX_ROWS + 5)))
    report = check(table, language="fr")
    html = BeautifulSoup(report._repr_html_(), "html.parser")
    assert report.outcome == "pass" and not html.select("[data-flagged]")
    assert len(html.select("tr")) == MAX_ROWS and "6 lignes de plus" in html.get_text()
    assert html.select_one(".tre-check p span").get_text() == "CONFORME"


def test_a_file_that_is_not_a_table_or_is_missing_says_so_without_a_table(tmp_path):
    missing = check(tmp_path / "nowhere.csv", language="en")
    assert missing.outcome == "fail" and "no such file" in missing._repr_html_()
    assert "<table" not in missing._repr_html_()
    notes = tmp_path / "notes.txt"
    notes.write_text("Readmissions fell by a tenth in 2023.\n")
    text = BeautifulSoup(check(notes, language="en")._repr_html_(), "html.parser")
    assert text.select_one(".tre-check") is not None and text.find("table") is None
