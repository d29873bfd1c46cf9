"""``tre check``: the egress review's rules on the command line, found through the ``tre.commands``
entry point, standalone and with a project's catalogue context."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tre_core.cli import app
from egress_review.checks import cli as standalone
from egress_review.checks.identifiers import IdentifierIndex

runner = CliRunner()


def test_tre_check_reports_the_failing_cell_and_exits_1(tmp_path):
    (tmp_path / "t.csv").write_text("region,n\n11,4\n84,37\n")
    (tmp_path / "ok.csv").write_text("region,n\n11,40\n84,37\n")
    result = runner.invoke(app, ["check", str(tmp_path / "t.csv"), str(tmp_path / "ok.csv"), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    outcomes = {f["path"].rsplit("/", 1)[1]: f["outcome"] for f in report["files"]}
    assert outcomes == {"t.csv": "fail", "ok.csv": "pass"}
    threshold = next(r for r in report["files"][0]["results"] if r["rule"] == "threshold")
    # named by row label and column name too, as people read the table
    assert threshold["details"]["cells"] == [{"row": 1, "col": 1, "value": "4", "label": "11", "column": "n"}]
    assert runner.invoke(app, ["check", str(tmp_path / "ok.csv")]).exit_code == 0


def test_tre_check_with_a_project_uses_the_catalogue(catalogue_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)
    (tmp_path / "leak.csv").write_text("who,n\na,40\n")
    result = runner.invoke(app, ["check", str(tmp_path / "leak.csv"), "--project", "cardio-risk"])
    assert result.exit_code == 1 and "identifier-leak" in result.output and "[fail]" in result.output
    missing = runner.invoke(app, ["check", str(tmp_path / "leak.csv"), "--project", "nope"])
    assert missing.exit_code == 1 and "No project nope" in missing.output


def test_the_standalone_entry_scans_with_an_index_file(tmp_path, capsys):
    IdentifierIndex.of_values(["P42"]).save(tmp_path / "ids.arrow")
    (tmp_path / "notes.txt").write_text("outlier: P42\n")
    assert standalone.main([str(tmp_path / "notes.txt"), "--index", str(tmp_path / "ids.arrow")]) == 1
    assert "identifier-leak" in capsys.readouterr().out
    assert standalone.main([str(tmp_path / "absent.csv")]) == 1
