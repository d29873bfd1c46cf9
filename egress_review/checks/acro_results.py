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


NOT_ACRO = Msg("This results.json is not ACRO's output; a checker must read it.")


class NotAcro(ValueError):
    """A results.json whose shape is not ACRO's (found by fuzzing: an output that is a string)."""


def check_results_json(path: Path, context: CheckContext) -> list[CheckResult]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
        outputs = data["results"]
        assert isinstance(outputs, dict)
        return [_output(str(uid), output) for uid, output in outputs.items()]
    # ValueError: undecodable bytes, bad JSON, an integer past Python's digit limit, NotAcro;
    # RecursionError: arrays nested thousands deep
    except (ValueError, RecursionError, KeyError, TypeError, AssertionError):
        return [result("acro", REVIEW, NOT_ACRO)]


def _shaped(value: Any, kind: type, default: Any) -> Any:
    """``value`` when it is of ACRO's ``kind``, ``default`` when absent; else not ACRO's file."""
    if value is None:
        return default
    if not isinstance(value, kind):
        raise NotAcro(f"{kind.__name__} expected, got {type(value).__name__}")
    return value


def _output(uid: str, output: Any) -> CheckResult:
    output = _shaped(output, dict, None)
    if output is None:
        raise NotAcro("an output that is null")
    status = STATUS.get(str(output.get("status", "")).lower(), REVIEW)
    flagged: dict[str, Any] = {}
    for item in _shaped(output.get("files"), list, []):
        sdc = _shaped(_shaped(item, dict, {}).get("sdc"), dict, {})
        for rule, positions in _shaped(sdc.get("cells"), dict, {}).items():
            if positions:
                flagged.setdefault(str(rule), []).extend(_shaped(positions, list, []))
    summary = str(output.get("summary", ""))
    # ACRO's own summary is ACRO's English, quoted as it is; its verdict is said in the reader's words.
    return result("acro", status, Msg("ACRO {uid} ({command}): {verdict}; {summary}", uid=uid,
                                      command=str(output.get("command", "")), verdict=OUTCOME[status], summary=summary),
                  acro_uid=uid, acro_cells=flagged, exception=output.get("exception"))
