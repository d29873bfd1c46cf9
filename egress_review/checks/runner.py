"""The checks of one file in a child process, with a time limit: a file that makes a parser hang or
crash the interpreter (a C extension reading a hostile XLSX, Parquet or image) reaches the checkers
as "needs review" with the reason, and the submission goes on; never a 500, never a stuck request.

``run_checks`` already turns any Python exception into a ``review`` result; what it cannot survive
is a parser that never returns, eats the memory or takes the process down. Each file is checked in
a process forked from a ``forkserver`` that has the checks (pandas, pyarrow, openpyxl) imported
once, so a check costs a fork, not an import; it is killed when the limit passes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from egress_review.checks import REVIEW, CheckContext, CheckResult, result, run_checks
from egress_review.checks.i18n import Msg

DEFAULT_TIMEOUT = float(os.environ.get("TRE_EGRESS_CHECK_TIMEOUT", "120"))
_PRELOAD = ["egress_review.checks.files", "egress_review.checks.tables", "egress_review.checks.from_data"]
_context: multiprocessing.context.BaseContext | None = None


def _processes() -> multiprocessing.context.BaseContext:
    global _context
    if _context is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        _context = context
    return _context


def _child(connection: Connection, check: Callable[[Path, CheckContext], list[CheckResult]], path: str,
           context: CheckContext) -> None:
    connection.send(check(Path(path), context))
    connection.close()


def run_checks_bounded(path: Path, context: CheckContext, timeout: float = DEFAULT_TIMEOUT,
                       check: Callable[[Path, CheckContext], list[CheckResult]] = run_checks) -> list[CheckResult]:
    """``check(path, context)`` (every rule) in a child process; past ``timeout`` seconds, or if the
    child dies, one ``review`` result that says so."""
    processes = _processes()
    receiving, sending = processes.Pipe(duplex=False)
    child = processes.Process(target=_child, args=(sending, check, str(path), context), daemon=True)
    child.start()
    sending.close()
    try:
        if receiving.poll(timeout):
            try:
                return receiving.recv()
            except EOFError:
                pass  # the child died before answering: said below
        else:
            child.kill()
            return [result("engine", REVIEW, Msg("The automatic checks of this file did not finish within {seconds} "
                                                 "s and were stopped; a checker must look at it.",
                                                 seconds=round(timeout)), error="timeout", seconds=timeout)]
    finally:
        receiving.close()
        child.join(5)
        if child.is_alive():
            child.kill()
            child.join()
    code = child.exitcode
    why = signal.Signals(-code).name if code is not None and code < 0 else f"exit status {code}"
    return [result("engine", REVIEW, Msg("The automatic checks crashed on this file ({why}); a checker must look "
                                         "at it.", why=why), error="crash", exit=code)]
