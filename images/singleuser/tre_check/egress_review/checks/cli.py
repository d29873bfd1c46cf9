"""``tre check PATH...``: the same rules as the egress review, on the command line.

Standalone (argparse, no catalogue) so that it runs anywhere the package is copied, e.g. in a
workspace: ``python -m egress_review.checks.cli results/*.csv [--index identifiers.arrow] [--json]``.
In the hub's ``tre`` CLI, ``tre check`` adds ``--project`` (the project's overrides, identifier
index and earlier releases from the catalogue). The exit status is 0 when every file passes, 2 when
one needs review and 1 when one fails, so a script can stop before submitting.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from egress_review.checks import FAIL, REVIEW, CheckContext, CheckResult, outcome, run_checks
from egress_review.checks.identifiers import IdentifierIndex

EXIT = {"pass": 0, "fail": 1, "review": 2}


def check_paths(paths: list[Path], context: CheckContext,
                notes: list[CheckResult] | None = None) -> dict[str, list[dict]]:
    """Each file's results; a missing path is a failing result, never a crash."""
    report = {}
    for path in paths:
        if not path.is_file():
            report[str(path)] = [CheckResult("file-type", FAIL, f"{path}: no such file.", {}).as_dict()]
            continue
        found = run_checks(path, replace(context, filename=path.name)) + list(notes or [])
        report[str(path)] = [r.as_dict() for r in found]
    return report


def render(report: dict[str, list[dict]], as_json: bool) -> tuple[str, int]:
    """The report as text (or JSON) and the exit status."""
    worst = outcome([{"status": outcome(results)} for results in report.values()])
    if as_json:
        return json.dumps({"files": [{"path": p, "outcome": outcome(r), "results": r} for p, r in report.items()],
                           "outcome": worst}, indent=2, ensure_ascii=False), EXIT[worst]
    lines = []
    for path, results in report.items():
        lines.append(f"{path}: {outcome(results).upper()}")
        for r in results:
            lines.append(f"  [{r['status']}] {r['rule']}: {r['summary']}")
            cells = r["details"].get("cells") or []
            if cells and r["status"] in (FAIL, REVIEW):
                shown = ", ".join(f"({c['row']},{c['col']})={c['value']}" for c in cells[:10])
                lines.append(f"      cells (row, column): {shown}{' ...' if len(cells) > 10 else ''}")
    return "\n".join(lines), EXIT[worst]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tre check", description="Automatic disclosure checks of output files.")
    parser.add_argument("paths", nargs="+", type=Path, help="files to check")
    parser.add_argument("--index", type=Path, help="an identifier index (.arrow) to scan for identifier leaks")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    identifiers = IdentifierIndex.load(args.index) if args.index else None
    text, status = render(check_paths(args.paths, CheckContext("", identifiers=identifiers)), args.json)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main())
