"""A short coverage-guided run of every harness (a few seconds each, bounded by libFuzzer's
``-max_total_time``), in the test command: any crash or hang over 10 s found fails the test with
libFuzzer's report. The run is seeded (``TRE_FUZZ_SEED``, 1 by default; 0 lets libFuzzer draw one)
so that the test command walks the same inputs each time: a crash it finds is this change's, not
the luck of the draw (a random short run of a fresh clone once found one in the ACRO reader). The
exploring is done by longer runs, whose finds become inputs in ``crashes/``:
``python -m tests.fuzz.run NAME -max_total_time=600 -timeout=10``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.harnesses import HARNESSES

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("TRE_FUZZ_SECONDS", "4"))
SEED = int(os.environ.get("TRE_FUZZ_SEED", "1"))


@pytest.mark.parametrize("name", sorted(HARNESSES))
def test_a_short_fuzzing_run_finds_no_crash_and_no_hang(name, tmp_path):
    run = subprocess.run([sys.executable, "-m", "tests.fuzz.run", name, f"-max_total_time={SECONDS}", "-timeout=10",
                          "-rss_limit_mb=3072", f"-seed={SEED}", f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
                         cwd=ROOT, capture_output=True, text=True, timeout=SECONDS + 120)
    report = run.stdout[-3000:] + run.stderr[-6000:]
    assert run.returncode == 0, report
    done = re.search(r"Done (\d+) runs", run.stderr)
    assert done and int(done.group(1)) > 0, report  # it really ran inputs
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*")), report
