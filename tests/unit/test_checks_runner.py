"""A file that makes the checks hang or crash the interpreter reaches the checkers as "needs review"
with the reason, and the submission goes on (the check runner's time limit, for real processes)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from egress_review.checks import PASS, REVIEW, CheckContext, outcome
from egress_review.checks.runner import run_checks_bounded


def hang(path: Path, context: CheckContext):
    time.sleep(3600)


def crash(path: Path, context: CheckContext):
    os.kill(os.getpid(), signal.SIGSEGV)


def test_a_good_table_gets_the_same_verdicts_in_the_child(tmp_path):
    (tmp_path / "t.csv").write_text("region,n\n11,40\n24,30\n")
    found = run_checks_bounded(tmp_path / "t.csv", CheckContext("t.csv"), timeout=60)
    assert outcome(found) == PASS and {r.rule for r in found} >= {"threshold", "microdata"}


def test_a_check_that_hangs_is_stopped_and_goes_to_review(tmp_path):
    (tmp_path / "t.csv").write_text("region,n\n11,40\n")
    started = time.monotonic()
    (found,) = run_checks_bounded(tmp_path / "t.csv", CheckContext("t.csv"), timeout=2, check=hang)
    assert time.monotonic() - started < 30
    assert found.status == REVIEW and found.details["error"] == "timeout" and "did not finish within 2 s" in found.summary


def test_a_check_that_kills_the_interpreter_goes_to_review_naming_the_signal(tmp_path):
    (tmp_path / "t.csv").write_text("region,n\n11,40\n")
    (found,) = run_checks_bounded(tmp_path / "t.csv", CheckContext("t.csv"), timeout=60, check=crash)
    assert found.status == REVIEW and "SIGSEGV" in found.summary and found.details["error"] == "crash"
