"""The checks speak French: every message a rule can give has its translation (walked in the source,
so a new untranslated one fails here), results are stored language-neutrally and said in the
reader's language on the egress pages and by ``tre check``, and results stored as English text
before still show."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from typer.testing import CliRunner

from tre_core.db import session_scope
from egress_review import checks
from egress_review.checks.i18n import Msg, catalogue, language_of, read_po, said, said_param
from egress_review.models import RequestFile
from tests.unit.egress_fixtures import TODAY  # noqa: F401 - the fixtures' day
from tests.unit.test_egress_service import browser, service  # noqa: F401 - the service fixture

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted((ROOT / "egress_review" / "checks").glob("*.py")) + [ROOT / "egress_review" / "submission.py"]
SMALL = "region,readmissions\n11,4\n84,37\n"


def message_ids() -> list[tuple[str, str]]:
    """Every ``Msg("...")`` of the checks and of the service's check notes: (where, msgid)."""
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (getattr(node.func, "id", None) == "Msg"
                                               or getattr(node.func, "attr", None) == "Msg"):
                first = node.args[0] if node.args else None
                where = f"{path.name}:{node.lineno}"
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), \
                    f"{where}: a Msg's text must be a literal, so that it can be translated"
                found.append((where, first.value))
    return found


def test_every_check_message_has_a_french_translation_with_the_same_parameters():
    ids = message_ids()
    assert len(ids) > 50  # the walk sees the rules' messages
    french = catalogue("fr")
    missing = [f"{where}: {msgid}" for where, msgid in ids if msgid not in french]
    assert not missing, "untranslated (add them to tre_core/locale/fr/LC_MESSAGES/tre.po):\n" + "\n".join(missing)
    for where, msgid in ids:
        assert set(re.findall(r"{(\w+)}", french[msgid])) == set(re.findall(r"{(\w+)}", msgid)), where
    assert not [d for d in checks.DESCRIPTIONS.values() if d not in french]


def test_the_checks_read_the_catalogue_as_babel_does():
    """The small .po reader (the workspace image has no Babel) agrees with the pages' reader."""
    from tre_core.i18n import _messages

    path = ROOT / "tre_core" / "locale" / "fr" / "LC_MESSAGES" / "tre.po"
    assert read_po(path.read_text(encoding="utf-8")) == _messages("fr")


def test_a_result_is_stored_language_neutrally_and_said_in_either_language(tmp_path):
    (tmp_path / "t.csv").write_text("region,n\n11,4\n84,37\nwho,zz\n")
    found = {r.rule: r.as_dict() for r in checks.run_checks(tmp_path / "t.csv", checks.CheckContext("t.csv"))}
    stored = json.loads(json.dumps(found["threshold"]))  # as the database keeps it
    assert stored["message"] == {"msgid": "{cells} cell(s) count fewer than {threshold}: suppress or merge them.",
                                 "params": {"cells": 1, "threshold": 10}}
    assert said(stored, "en") == stored["summary"] == "1 cell(s) count fewer than 10: suppress or merge them."
    assert said(stored, "fr") == ("1 cellule(s) ont un effectif inférieur à 10 (effectif minimal) : supprimez-les "
                                  "ou regroupez des modalités.")


def test_nested_messages_evidence_and_old_english_results():
    why = [Msg("column “{name}” looks like an identifier", name="nir"), Msg("column “{name}” holds free text",
                                                                           name="notes")]
    summary = Msg("This looks like row-level data ({rows} rows; {why}); release only aggregated tables.",
                  rows=120, why=why)
    stored = json.loads(json.dumps(checks.result("microdata", checks.FAIL, summary).as_dict()))
    assert said(stored, "fr") == ("Cela ressemble à des micro-données, c’est-à-dire des données individuelles "
                                  "(120 lignes ; la colonne « nir » ressemble à un identifiant ; la colonne « notes » "
                                  "contient du texte libre) ; ne sortez que des tableaux agrégés.")
    earlier = Msg("request {request}, {path}", request=12, path="outputs/t.csv")
    differencing = checks.result("differencing", checks.FAIL, Msg(
        "With {earlier}, released earlier, {cells} cell(s) differ by fewer than {threshold}: subtracting the two "
        "tables discloses a small group.", earlier=earlier, cells=1, threshold=10), earlier=str(earlier)).as_dict()
    assert said_param(differencing, "earlier", "fr") == "demande 12, outputs/t.csv"
    assert said_param(differencing, "earlier", "en") == "request 12, outputs/t.csv"
    old = {"rule": "threshold", "status": "fail", "summary": "2 cell(s) count fewer than 10.",
           "details": {"earlier": "request 3, a.csv"}}  # stored before results carried their message
    assert said(old, "fr") == "2 cell(s) count fewer than 10." and said_param(old, "earlier", "fr") == "request 3, a.csv"


@pytest.mark.parametrize(("asked", "environ", "language"), [
    (None, {"LANG": "fr_FR.UTF-8"}, "fr"),
    (None, {"LC_ALL": "en_GB.UTF-8", "LANG": "fr_FR.UTF-8"}, "en"),  # LC_ALL wins, as for every program
    (None, {"LC_MESSAGES": "fr_FR.UTF-8", "LANG": "en_US.UTF-8"}, "fr"),
    (None, {"LANG": "C.UTF-8", "TRE_UI_LANGUAGE": "fr"}, "fr"),  # the workspace image: the browser's language
    (None, {"LANG": "de_DE.UTF-8"}, "en"),
    (None, {}, "en"),
    ("fr", {"LANG": "en_US.UTF-8"}, "fr"),
])
def test_the_terminal_language(asked, environ, language):
    assert language_of(asked, environ) == language


def test_tre_check_in_french_from_the_locale(tmp_path):
    """The workspace's ``tre check`` (the standalone command) under a French locale."""
    (tmp_path / "small.csv").write_text(SMALL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "TRE_UI"))}
    ran = subprocess.run([sys.executable, "-m", "egress_review.checks.cli", str(tmp_path / "small.csv")],
                         capture_output=True, text=True, env={**env, "LANG": "fr_FR.UTF-8"}, check=False)
    assert ran.returncode == 1, ran.stderr
    assert f"{tmp_path / 'small.csv'}: NON CONFORME" in ran.stdout
    assert ("  [non conforme] threshold: 1 cellule(s) ont un effectif inférieur à 10 (effectif minimal) : "
            "supprimez-les ou regroupez des modalités.") in ran.stdout
    assert "      cellules (ligne, colonne) : (1,1)=4" in ran.stdout
    english = subprocess.run([sys.executable, "-m", "egress_review.checks.cli", str(tmp_path / "small.csv"),
                              "--lang", "en", "--json"], capture_output=True, text=True,
                             env={**env, "LANG": "fr_FR.UTF-8"}, check=False)
    report = json.loads(english.stdout)
    threshold = next(r for r in report["files"][0]["results"] if r["rule"] == "threshold")
    assert report["language"] == "en" and threshold["summary"].startswith("1 cell(s) count fewer than 10")


def test_the_hubs_tre_check_takes_lang_and_refuses_an_unknown_one(tmp_path, monkeypatch):
    from tre_core.cli import app

    (tmp_path / "small.csv").write_text(SMALL)
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    runner = CliRunner()
    french = runner.invoke(app, ["check", str(tmp_path / "small.csv"), "--lang", "fr"])
    assert french.exit_code == 1 and "[non conforme] threshold: 1 cellule(s)" in french.output
    monkeypatch.setenv("LC_ALL", "fr_FR.UTF-8")
    assert "effectif minimal" in runner.invoke(app, ["check", str(tmp_path / "small.csv")]).output
    wrong = runner.invoke(app, ["check", str(tmp_path / "small.csv"), "--lang", "de"])
    assert wrong.exit_code == 64 and "en, fr" in wrong.output


def test_the_review_page_says_the_verdicts_in_the_readers_language(service, tmp_path, catalogue_url):  # noqa: F811
    base, airlock = service
    (tmp_path / "workspaces" / "cardio-risk" / "shared" / "outputs" / "small.csv").write_text(SMALL)
    rid = airlock.create("alice", "cardio-risk", "Small cells")
    airlock.add_file("alice", rid, "outputs/small.csv", "Table 1", "output", context="c", controls="k")
    airlock.submit("alice", rid)
    carol = browser(base, "carol")

    def threshold(language: str) -> tuple[str, str]:
        page = BeautifulSoup(carol.get(base + f"reviews/{rid}", headers={"Accept-Language": language}).text,
                             "html.parser")
        item = page.select_one('li[data-rule="threshold"]')
        return page.select_one(".check-outcome").get_text(), item.select_one(".check-summary").get_text()

    assert threshold("fr-FR,fr;q=0.9") == ("Non conforme", "1 cellule(s) ont un effectif inférieur à 10 (effectif "
                                                           "minimal) : supprimez-les ou regroupez des modalités.")
    assert threshold("en") == ("Fail", "1 cell(s) count fewer than 10: suppress or merge them.")
    # A result stored as English text only, before results carried their message: shown as it was.
    with session_scope(catalogue_url) as session:
        record = session.query(RequestFile).filter_by(request_id=rid).one()
        record.checks = [{"rule": "threshold", "status": "fail", "summary": "Stored long ago.", "details": {}}]
    assert threshold("fr") == ("Non conforme", "Stored long ago.")
