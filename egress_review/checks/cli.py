"""``tre check PATH...``: the same rules as the egress review, on the command line.

Standalone (argparse, no catalogue) so that it runs anywhere the package is copied, e.g. in a
workspace: ``python -m egress_review.checks.cli results/*.csv [--index identifiers.arrow] [--json]``.
In the hub's ``tre`` CLI, ``tre check`` adds ``--project`` (the project's overrides, identifier
index and earlier releases from the catalogue). The exit status is 0 when every file passes, 2 when
one needs review and 1 when one fails, so a script can stop before submitting. The report is in
English or French: ``--lang``, else the terminal's locale (LC_ALL, LC_MESSAGES, LANG), else the
workspace's language (TRE_UI_LANGUAGE, which the spawner sets from the researcher's browser).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from egress_review.checks import FAIL, REVIEW, CheckContext, CheckResult, outcome, result, run_checks
from egress_review.checks.i18n import LANGUAGES, Msg, language_of, said
from egress_review.checks.identifiers import IdentifierIndex

EXIT = {"pass": 0, "fail": 1, "review": 2}
# The statuses as words of the report (msgids: the English report prints the status ids themselves).
STATUS_WORDS = {"pass": Msg("pass"), "review": Msg("review"), "fail": Msg("fail")}


def check_paths(paths: list[Path], context: CheckContext,
                notes: list[CheckResult] | None = None) -> dict[str, list[dict]]:
    """Each file's results; a missing path is a failing result, never a crash."""
    report = {}
    for path in paths:
        if not path.is_file():
            report[str(path)] = [result("file-type", FAIL, Msg("{path}: no such file.", path=str(path))).as_dict()]
            continue
        found = run_checks(path, replace(context, filename=path.name)) + list(notes or [])
        report[str(path)] = [r.as_dict() for r in found]
    return report


def render(report: dict[str, list[dict]], as_json: bool, language: str = "en") -> tuple[str, int]:
    """The report as text (or JSON) in ``language``, and the exit status. In JSON, each result's
    ``summary`` is in ``language`` and ``message`` keeps it language-neutral; statuses, rule ids
    and outcomes stay the machine's words (pass, review, fail)."""
    worst = outcome([{"status": outcome(results)} for results in report.values()])
    if as_json:
        files = [{"path": p, "outcome": outcome(r), "results": [{**x, "summary": said(x, language)} for x in r]}
                 for p, r in report.items()]
        return json.dumps({"files": files, "outcome": worst, "language": language}, indent=2,
                          ensure_ascii=False), EXIT[worst]
    lines = []
    for path, results in report.items():
        lines.append(f"{path}: {STATUS_WORDS[outcome(results)].said_in(language).upper()}")
        for r in results:
            lines.append(f"  [{STATUS_WORDS[r['status']].said_in(language)}] {r['rule']}: {said(r, language)}")
            cells = r["details"].get("cells") or []
            if cells and r["status"] in (FAIL, REVIEW):
                shown = ", ".join(f"({c['row']},{c['col']})={c['value']}" for c in cells[:10])
                more = " ..." if len(cells) > 10 else ""
                lines.append(f"      {Msg('cells (row, column): {cells}', cells=shown + more).said_in(language)}")
    return "\n".join(lines), EXIT[worst]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tre check", description="Automatic disclosure checks of output files.")
    parser.add_argument("paths", nargs="+", type=Path, help="files to check")
    parser.add_argument("--index", type=Path, help="an identifier index (.arrow) to scan for identifier leaks")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--lang", choices=LANGUAGES, help="the report's language (default: the terminal's locale)")
    args = parser.parse_args(argv)
    identifiers = IdentifierIndex.load(args.index) if args.index else None
    text, status = render(check_paths(args.paths, CheckContext("", identifiers=identifiers)), args.json,
                          language_of(args.lang))
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
