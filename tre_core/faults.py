"""Named points where a test can stop a process, to kill it (``kill -9``) exactly there.

A fault test sets, for the process under test only, ``TRE_TEST_FAULT_POINT`` (one point name, or
several separated by commas) and ``TRE_TEST_FAULT_FIFOS`` (a folder holding one named pipe per
point, made by the test with ``os.mkfifo``). Reaching a named point, the process opens that
point's pipe for reading: the open blocks until the test opens it for writing, so the test's own
open returns exactly when the process is there; the test then kills it, or writes a line to let it
go on. No sleep, no polling, no race with how fast the machine is.

Without both variables every point is a no-op (one dictionary lookup), so the calls stay in the
product code. Read from the environment rather than from the settings object: the points sit in
low-level code (the store, the release copy) that has no settings at hand, and they are a test's
instrument, never an operator's setting.
"""

from __future__ import annotations

import os
from pathlib import Path

POINT_VARIABLE = "TRE_TEST_FAULT_POINT"
FIFOS_VARIABLE = "TRE_TEST_FAULT_FIFOS"


def armed() -> set[str]:
    """The points armed in this process's environment (none unless a test set both variables)."""
    points, folder = os.environ.get(POINT_VARIABLE), os.environ.get(FIFOS_VARIABLE)
    if not points or not folder:
        return set()
    return {p.strip() for p in points.split(",") if p.strip()}


def pause_at(point: str) -> None:
    """Block at ``point`` until the test lets this process go on (or kills it); inert unless armed."""
    if point not in armed():
        return
    pipe = Path(os.environ[FIFOS_VARIABLE]) / point
    if not pipe.exists():
        return  # armed for another process sharing the environment: not this one's pipe
    with pipe.open("rb") as stream:  # blocks until the test opens the other end
        stream.readline()  # and here until it writes a line, or closes, or kills us


def fifo_for(folder: Path, point: str) -> Path:
    """The pipe a test makes for ``point`` in ``folder`` (for the test's side)."""
    pipe = folder / point
    if not pipe.exists():
        os.mkfifo(pipe, 0o600)
    return pipe
