"""Every disclosure rule on small tables whose flagged cells were worked out by hand, and every
kind of bad input given a clear verdict instead of a crash."""

from __future__ import annotations

import json
import resource
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egress_review.checks import FAIL, PASS, REVIEW, CheckContext, Released, outcome, run_checks
from egress_review.checks.from_data import crosstab, pivot_table
from egress_review.checks.identifiers import IdentifierIndex, identifying_columns
from egress_review.checks.params import Params


def check(tmp_path: Path, name: str, content: bytes | str, **context) -> dict[str, dict]:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    results = run_checks(path, CheckContext(name, **context))
    return {r.rule: r.as_dict() for r in results}


def cells(result: dict) -> list[tuple[int, int]]:
    return [(c["row"], c["col"]) for c in result["details"]["cells"]]


# --- tables -------------------------------------------------------------------------------------

CROSSTAB = "sex,1,2\nregion,,\n11,5,12\n24,0,30\n32,15,-3\n"


def test_threshold_zeros_and_negative_cells_of_a_pandas_crosstab(tmp_path):
    # Rows 0-1 are the header (the second is pandas' index-name row); column 0 holds the labels.
    found = check(tmp_path, "t.csv", CROSSTAB)
    assert cells(found["threshold"]) == [(2, 1)]  # the 5
    assert found["threshold"]["status"] == FAIL
    assert cells(found["zeros"]) == [(3, 1)]
    assert cells(found["negative"]) == [(4, 2)] and found["negative"]["status"] == REVIEW
    assert outcome(list(found.values())) == FAIL


def test_a_safe_table_passes_and_its_rounding_is_shown(tmp_path):
    found = check(tmp_path, "t.csv", "age,men,women\n18-39,20,35\n40-64,45,50\n")
    assert found["threshold"]["status"] == PASS
    assert found["rounding"]["details"]["base"] == 5
    assert outcome(list(found.values())) == PASS
    unrounded = check(tmp_path, "u.csv", "age,n\nyoung,21\nold,30\n")
    assert unrounded["rounding"]["details"]["base"] is None


def test_thresholds_follow_the_projects_overrides(tmp_path):
    found = check(tmp_path, "t.csv", "g,n\na,12\nb,30\n", params=Params.from_overrides({"threshold": 20}))
    assert cells(found["threshold"]) == [(1, 1)]
    assert "zeros" not in check(tmp_path, "z.csv", "g,n\na,0\nb,30\n",
                                params=Params.from_overrides({"zeros_are_disclosive": False}))


@pytest.mark.parametrize("overrides, message", [({"treshold": 5}, "Unknown"), ({"threshold": -1}, "whole number"),
                                                ({"nk_k": 2}, "between 0 and 1"), ({"zeros_are_disclosive": 1}, "true or false")])
def test_bad_overrides_are_refused_with_a_message(overrides, message):
    with pytest.raises(ValueError, match=message):
        Params.from_overrides(overrides)


def test_means_without_counts_go_to_review(tmp_path):
    found = check(tmp_path, "m.tsv", "region\tmean_age\n11\t45.2\n24\t51.7\n")
    assert found["statistics"]["status"] == REVIEW
    assert found["threshold"]["status"] == PASS


def test_label_columns_are_detected_and_never_counted(tmp_path):
    found = check(tmp_path, "t.csv", "chapter,sex,n\nI,M,3\nI,F,40\n")
    assert cells(found["threshold"]) == [(1, 2)]


def test_microdata_fails(tmp_path):
    rows = "\n".join(f"p{i:05d},{1950 + i % 50}-01-0{1 + i % 9},{i % 2}" for i in range(150))
    found = check(tmp_path, "rows.csv", "patient_id,date_of_birth,sex\n" + rows + "\n")
    assert found["microdata"]["status"] == FAIL
    assert "threshold" not in found  # no cell rules on row-level data: it fails as a whole


def test_xlsx_and_parquet_tables(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    for row in (["g", "n"], ["a", 4], ["b", 30]):
        book.active.append(row)
    book.save(tmp_path / "t.xlsx")
    found = {r.rule: r.as_dict() for r in run_checks(tmp_path / "t.xlsx", CheckContext("t.xlsx"))}
    assert cells(found["threshold"]) == [(1, 1)]
    pd.DataFrame({"g": ["a", "b"], "n": [30, 7]}).to_parquet(tmp_path / "t.parquet")
    found = {r.rule: r.as_dict() for r in run_checks(tmp_path / "t.parquet", CheckContext("t.parquet"))}
    assert cells(found["threshold"]) == [(2, 1)]


def test_differencing_with_an_earlier_release_names_it(tmp_path):
    earlier = tmp_path / "all.csv"
    earlier.write_text("region,n\n11,120\n24,200\n")
    released = (Released("request 3, all.csv", earlier, "all.csv"),)
    found = check(tmp_path, "adults.csv", "region,n\n11,115\n24,150\n", released=released)
    assert cells(found["differencing"]) == [(1, 1)]  # 120 - 115 = 5 minors in region 11
    assert "request 3" in found["differencing"]["summary"]


# --- identifiers --------------------------------------------------------------------------------

def test_identifier_leak_in_a_table_and_in_a_text(tmp_path):
    index = IdentifierIndex.of_values(["P000123", "P000456", pd.Timestamp("2021-03-04")])
    found = check(tmp_path, "t.csv", "who,n\nP000456,30\nothers,40\n", identifiers=index)
    assert cells(found["identifier-leak"]) == [(1, 0)]
    found = check(tmp_path, "notes.txt", "The outlier is patient P000123 seen on 04/03/2021.\n", identifiers=index)
    assert found["identifier-leak"]["status"] == FAIL
    assert found["identifier-leak"]["details"]["values"] == ["P000123", "04/03/2021"]
    assert check(tmp_path, "ok.csv", "who,n\nall,30\n", identifiers=index)["identifier-leak"]["status"] == PASS


def test_identifying_columns_are_direct_ids_exact_dates_and_postcodes():
    columns = [{"name": "patient_id", "identifier": "direct"}, {"name": "sex", "identifier": "indirect"},
               {"name": "care_date", "type": "date", "identifier": "indirect"},
               {"name": "code_postal", "type": "string", "identifier": "indirect"}, {"name": "amount"}]
    assert identifying_columns(columns) == ["patient_id", "care_date", "code_postal"]


def test_index_from_parquet_survives_a_save(tmp_path):
    pd.DataFrame({"patient_id": ["a1", "b2", None], "v": [1, 2, 3]}).to_parquet(tmp_path / "d.parquet")
    IdentifierIndex.from_parquet([(tmp_path / "d.parquet", ["patient_id"])]).save(tmp_path / "i.arrow")
    index = IdentifierIndex.load(tmp_path / "i.arrow")
    assert len(index) == 2 and index.contains(["b2", "c3"]).tolist() == [True, False]


# --- notebooks, figures, models, archives -------------------------------------------------------

def notebook(*outputs: dict) -> str:
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": list(outputs)}]})


def test_notebook_outputs_are_checked(tmp_path):
    html = pd.DataFrame({"n": [3, 40]}, index=["a", "b"]).to_html()
    found = check(tmp_path, "a.ipynb", notebook({"output_type": "execute_result", "data": {"text/html": html}}))
    assert found["threshold"]["status"] == FAIL
    raw = pd.DataFrame({"patient_id": ["x1", "x2"], "age": [40, 50]}).to_html()
    found = check(tmp_path, "b.ipynb", notebook({"output_type": "execute_result", "data": {"text/html": raw}},
                                                {"output_type": "display_data", "data": {"image/png": "iVBOR"}}))
    assert found["microdata"]["status"] == FAIL and found["notebook-images"]["status"] == REVIEW
    index = IdentifierIndex.of_values(["x9"])
    found = check(tmp_path, "c.ipynb", notebook({"output_type": "stream", "text": ["top: x9\n"]}), identifiers=index)
    assert found["identifier-leak"]["status"] == FAIL


def test_figures_models_and_archives(tmp_path):
    assert check(tmp_path, "f.png", b"\x89PNG....")["figure"]["status"] == REVIEW
    assert check(tmp_path, "f.svg", "<svg><script>alert(1)</script></svg>")["figure"]["status"] == FAIL
    assert check(tmp_path, "f.pdf", "%PDF-1.4 /OpenAction << /JS (app.alert(1)) >>")["figure"]["status"] == FAIL
    assert check(tmp_path, "m.pkl", b"\x80\x04junk")["model"]["status"] == REVIEW
    refused = check(tmp_path, "a.zip", b"PK\x03\x04")["file-type"]
    assert refused["status"] == FAIL and "Accepted" in refused["summary"]
    assert check(tmp_path, "x.exe", b"MZ")["file-type"]["status"] == FAIL


# --- bad input ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, words", [
    ("e.csv", b"", "empty"),
    ("b.csv", b"\x00\x01\x02binary", "binary"),
    ("l.csv", "région,n\nÎle,30\n".encode("latin-1"), "UTF-8"),
    ("m.csv", b'g,n\na,30\nb,40,50\n', "line 3"),
    ("q.csv", b'g,n\n"a,30\n', "malformed"),
    ("n.ipynb", b"{not json", "not a valid notebook"),
    ("x.xlsx", b"not a zip", "not a valid Excel"),
])
def test_bad_input_gets_a_clear_failing_verdict(tmp_path, name, content, words):
    found = check(tmp_path, name, content)
    assert outcome(list(found.values())) == FAIL
    assert any(words in r["summary"] for r in found.values()), found


def test_excel_formulas_and_macros_are_refused(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["g", "n"])
    book.active.append(["a", "=1+2"])
    book.save(tmp_path / "f.xlsx")
    found = {r.rule: r.summary for r in run_checks(tmp_path / "f.xlsx", CheckContext("f.xlsx"))}
    assert "formula" in found["table-format"] and "B2" in found["table-format"]
    with zipfile.ZipFile(tmp_path / "m.xlsx", "w") as archive:
        archive.writestr("xl/vbaProject.bin", b"macro")
    found = {r.rule: r.summary for r in run_checks(tmp_path / "m.xlsx", CheckContext("m.xlsx"))}
    assert "macros" in found["table-format"]


def test_a_workbook_too_large_for_a_summary_is_row_level_data_never_read_whole(tmp_path, monkeypatch):
    """A sheet is read whole, so an .xlsx larger than a summary table (or one whose few bytes unzip
    into more rows than any summary) fails as row-level data before it fills the memory."""
    import openpyxl

    from egress_review.checks import tables

    book = openpyxl.Workbook()
    for i in range(12):
        book.active.append([f"g{i}", 20 + i])
    book.save(tmp_path / "t.xlsx")
    monkeypatch.setattr(tables, "MAX_SHEET_ROWS", 10)
    found = check(tmp_path, "t.xlsx", (tmp_path / "t.xlsx").read_bytes())
    assert found["table-format"]["status"] == FAIL and "more than 10 rows" in found["table-format"]["summary"]
    monkeypatch.setattr(tables, "MAX_TABLE_BYTES", 1000)
    found = check(tmp_path, "t.xlsx", (tmp_path / "t.xlsx").read_bytes())
    assert found["table-format"]["status"] == FAIL and "bytes, far more than a summary" in found["table-format"]["summary"]


def test_a_large_csv_is_streamed_with_bounded_memory(tmp_path):
    """About 300 MB of rows: treated as row-level data, scanned in blocks, memory stays bounded."""
    path = tmp_path / "big.csv"
    line = b"".join(b"id%07d,2020-01-01,%d\n" % (i, i % 7) for i in range(100_000))
    with path.open("wb") as stream:
        for _ in range(300 * 1024 * 1024 // len(line)):
            stream.write(line)
    index = IdentifierIndex.of_values(["id0000042"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    found = {r.rule: r for r in run_checks(path, CheckContext("big.csv", identifiers=index))}
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert found["table-format"].status == FAIL and "row-level" in found["table-format"].summary
    assert found["identifier-leak"].status == FAIL
    assert grown_mb < 200, grown_mb  # the file is 300 MB: it was never held whole


# --- the from-the-data entry point --------------------------------------------------------------

def test_crosstab_and_pivot_from_the_rows_flag_cells_by_hand():
    data = pd.DataFrame({"a": ["x"] * 12 + ["y"] * 3, "b": ["u"] * 11 + ["v"] * 4,
                         "amt": [100.0] * 10 + [5000.0, 1.0, 1.0, 1.0, 1.0]})
    # Counts: x/u 11, x/v 1, y/u 0, y/v 3.
    table = crosstab(data.a, data.b)
    assert table.table.to_numpy().tolist() == [[11, 1], [0, 3]]
    assert table.flags == {"threshold": [(0, 1), (1, 0), (1, 1)], "zeros": [(1, 0)]}
    pivot = pivot_table(data, "a", "b", "amt", "sum")
    # x/u: 10 x 100 + 5000; the two largest are 5000 + 100 = 85 % (< 90 %), the rest 900 / 5000 = 0.18 (> 0.1).
    # x/v: one contribution of 1.0 is all of its cell (N-K 100 %, p-ratio 0); y/v: three of 1.0, the two largest
    # are 67 % and the rest is 1.0 / 1.0 = 1 of the largest: not dominated (but under the threshold).
    assert pivot.flags["nk-rule"] == [(0, 1)]
    assert pivot.flags["p-ratio"] == [(0, 1)]
    assert np.isnan(pivot.table.to_numpy()[1, 0])


# --- wired into the egress review: checks at submission, on the catalogue's real rows -------------

def test_submission_runs_the_checks_with_the_catalogues_identifiers_and_overrides(catalogue_url, tmp_path):
    """cardio-risk is granted the demo datasets, whose stand-in Parquet files hold patient ids "a", "b"."""
    from tre_core.db import session_scope
    from datasets.models import Project
    from tests.unit.egress_fixtures import make_airlock

    airlock = make_airlock(catalogue_url, tmp_path, data_root=tmp_path / "data", checks_cache=tmp_path / "cache")
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    (outputs / "small.csv").write_text("region,n\n11,4\n84,37\n")
    (outputs / "leak.csv").write_text("top patient,n\nb,37\n")
    request = airlock.create("alice", "cardio-risk", "Checks")
    for name in ("small.csv", "leak.csv"):
        airlock.add_file("alice", request, f"outputs/{name}", "T", "output", context="c", controls="k")
    airlock.submit("alice", request)
    files = {f.name: {c["rule"]: c for c in f.checks} for f in airlock.get("alice", request).files}
    assert [(c["row"], c["col"]) for c in files["small.csv"]["threshold"]["details"]["cells"]] == [(1, 1)]
    assert files["small.csv"]["identifier-leak"]["status"] == PASS
    assert [(c["row"], c["col"]) for c in files["leak.csv"]["identifier-leak"]["details"]["cells"]] == [(1, 0)]
    assert list((tmp_path / "cache" / "identifiers").glob("*.arrow"))  # built once per dataset version, cached
    with session_scope(catalogue_url) as session:
        session.get(Project, "cardio-risk").disclosure_rules = {"threshold": 40}
    second = airlock.create("alice", "cardio-risk", "Stricter")
    airlock.add_file("alice", second, "outputs/small.csv", "T", "output", context="c", controls="k")
    airlock.submit("alice", second)
    found = {c["rule"]: c for c in airlock.get("alice", second).files[0].checks}
    assert [(c["row"], c["col"]) for c in found["threshold"]["details"]["cells"]] == [(1, 1), (2, 1)]


def test_the_demo_catalogue_carries_a_projects_overrides(catalogue_url):
    from tre_core.db import session_scope
    from datasets.models import Project

    with session_scope(catalogue_url) as session:
        rules = session.get(Project, "diabetes-outcomes").disclosure_rules
    assert Params.from_overrides(rules).threshold == 11


def test_a_semicolon_csv_is_read_and_shown_with_the_same_cells(tmp_path):
    from egress_review.render import table_rows

    found = check(tmp_path, "fr.csv", "région;effectif\n11;4\n84;37\n")
    assert cells(found["threshold"]) == [(1, 1)]
    rows, _ = table_rows(tmp_path / "fr.csv", "fr.csv")
    assert rows[1][1] == "4"


def test_every_rule_has_a_description_for_the_checkers():
    import re

    from egress_review.checks import DESCRIPTIONS

    source = "".join(p.read_text() for p in (Path(__file__).resolve().parents[2] / "egress_review" / "checks").glob("*.py"))
    rules = set(re.findall(r'result\("([a-z-]+)"', source)) | set(re.findall(r'CheckResult\("([a-z-]+)"', source))
    assert len(rules) > 15 and rules <= set(DESCRIPTIONS), rules - set(DESCRIPTIONS)


def test_a_table_differing_from_an_earlier_release_by_a_small_count_is_flagged(catalogue_url, tmp_path):
    """Request 1 releases readmissions by region (42, 37); a later table of the same cells with 40 and 37
    reveals a group of 2 by subtraction, so the differencing rule names the earlier release."""
    from tests.unit.egress_fixtures import make_airlock, submitted_request

    airlock = make_airlock(catalogue_url, tmp_path)
    first = submitted_request(airlock, supporting=False)
    table_id = airlock.get("alice", first).files[0].id
    for checker in ("carol", "dave"):
        airlock.review(checker, first, {table_id: "approve"})
    assert airlock.release("carol", first) == ["table.csv"]
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    (outputs / "subset.csv").write_text("region,readmissions\n11,40\n84,37\n")
    second = airlock.create("alice", "cardio-risk", "Subset")
    airlock.add_file("alice", second, "outputs/subset.csv", "T", "output", context="c", controls="k")
    airlock.submit("alice", second)
    found = {c["rule"]: c for c in airlock.get("alice", second).files[0].checks}
    assert found["differencing"]["status"] == FAIL
    assert cells(found["differencing"]) == [(1, 1)]
    assert found["differencing"]["details"]["earlier"] == f"request {first}, outputs/table.csv"


def tiny_png(*extra_chunks: tuple[bytes, bytes]) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(chunk(k, v) for k, v in extra_chunks) + pixels + chunk(b"IEND", b"")


def test_image_metadata_is_stripped_and_the_pixels_kept():
    from egress_review.checks.strip import stripped

    clean = tiny_png()
    tagged = tiny_png((b"tEXt", b"Author\x00Alice Martin"), (b"eXIf", b"MM\x00*GPS"))
    assert stripped(tagged, "f.png") == clean
    jpeg = (b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
            + b"\xff\xe1\x00\x0cExif\x00\x00GPS!" + b"\xff\xfe\x00\x07Alice" + b"\xff\xda\x00\x02pixels\xff\xd9")
    out = stripped(jpeg, "f.JPG")
    assert b"Exif" not in out and b"Alice" not in out and b"JFIF" in out and out.endswith(b"pixels\xff\xd9")
    assert stripped(b"not a png", "f.png") == b"not a png"


def test_a_released_image_has_no_metadata_and_its_release_verifies(catalogue_url, tmp_path):
    from egress_review import release
    from tests.unit.egress_fixtures import make_airlock

    airlock = make_airlock(catalogue_url, tmp_path)
    outputs = tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs"
    (outputs / "figure.png").write_bytes(tiny_png((b"tEXt", b"Author\x00Alice Martin")))
    request = airlock.create("alice", "cardio-risk", "Figure")
    airlock.add_file("alice", request, "outputs/figure.png", "F", "output", context="c", controls="k")
    airlock.submit("alice", request)
    figure = airlock.get("alice", request).files[0]
    assert {c["rule"]: c["status"] for c in figure.checks} == {"figure": REVIEW}
    for checker in ("carol", "dave"):
        airlock.review(checker, request, {figure.id: "approve"})
    airlock.release("carol", request)
    folder = airlock.store.releases / str(request)
    assert (folder / "figure.png").read_bytes() == tiny_png()
    record = json.loads((folder / "decision.json").read_text())
    assert record["files"][0]["sha256"] == figure.sha256 and record["files"][0]["metadata_stripped"] is True
    assert release.verify_release(folder, release.public_key(tmp_path / "secrets")).ok
