"""ACRO's own verdicts: the ``results.json`` that ``acro.finalise`` writes, read without importing ACRO.

Each ACRO output becomes one result with ACRO's status and summary, and the cells ACRO flagged per
rule (threshold, p-ratio, nk-rule, all-values-are-same...) as evidence, so the checker sees ACRO's
view next to ours.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egress_review.checks import FAIL, PASS, REVIEW, CheckContext, CheckResult, result
from egress_review.checks.i18n import Msg

STATUS = {"pass": PASS, "fail": FAIL, "review": REVIEW}
OUTCOME = {PASS: Msg("Pass"), REVIEW: Msg("Needs review"), FAIL: Msg("Fail")}  # the egress pages' words


def check_results_json(path: Path, context: CheckContext) -> list[CheckResult]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        outputs = data["results"]
        assert isinstance(outputs, dict)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AssertionError):
        return [result("acro", REVIEW, Msg("This results.json is not ACRO's output; a checker must read it."))]
    return [_output(uid, output) for uid, output in outputs.items()]


def _output(uid: str, output: dict[str, Any]) -> CheckResult:
    status = STATUS.get(str(output.get("status", "")).lower(), REVIEW)
    flagged: dict[str, Any] = {}
    for item in output.get("files", []) or []:
        cells = (item.get("sdc") or {}).get("cells") or {}
        for rule, positions in cells.items():
            if positions:
                flagged.setdefault(rule, []).extend(positions)
    summary = str(output.get("summary", ""))
    # ACRO's own summary is ACRO's English, quoted as it is; its verdict is said in the reader's words.
    return result("acro", status, Msg("ACRO {uid} ({command}): {verdict}; {summary}", uid=uid,
                                      command=output.get("command", ""), verdict=OUTCOME[status], summary=summary),
                  acro_uid=uid, acro_cells=flagged, exception=output.get("exception"))
