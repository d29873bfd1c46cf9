"""The pieces the fault tests rely on, on their own: the sweep keeps a file frozen again between its
listing and its unlink (with the control: the same file not frozen again goes), the fault points
are inert without their variables and stop a real process at the named point with them, and the
release lease is held by one session at a time (on PostgreSQL: two connections, as two processes).
Processes killed for real: tests/integration/test_faults.py."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from egress_review import lease
from egress_review.store import SWEEP_GRACE, Store
from tre_core import faults


def old(path: Path) -> None:
    long_ago = time.time() - SWEEP_GRACE - 60
    os.utime(path, (long_ago, long_ago))


def test_a_file_frozen_again_between_listing_and_unlink_is_kept(tmp_path):
    store = Store(tmp_path)
    name = "b" * 64
    (store.objects / name).write_text("frozen long ago by a submission that never committed")
    old(store.objects / name)
    candidates = store.candidates_for_sweep()
    assert [c.path.name for c in candidates] == [name]
    # Another replica freezes the same content now: a new file renamed onto the same name.
    fresh = store.objects / ".tmp-otherhost-1-00"
    fresh.write_text("frozen long ago by a submission that never committed")
    os.replace(fresh, store.objects / name)
    assert store.sweep(candidates, referenced=set()) == 0
    assert (store.objects / name).exists()


def test_the_control_the_same_file_not_frozen_again_is_swept(tmp_path):
    store = Store(tmp_path)
    name = "c" * 64
    (store.objects / name).write_text("left by a crash")
    old(store.objects / name)
    assert store.sweep(store.candidates_for_sweep(), referenced=set()) == 1
    assert not (store.objects / name).exists()


def test_fault_points_are_inert_without_their_variables(monkeypatch):
    monkeypatch.delenv(faults.POINT_VARIABLE, raising=False)
    monkeypatch.setenv(faults.FIFOS_VARIABLE, "/nonexistent")
    assert faults.armed() == set()
    faults.pause_at("release.copy")  # returns at once


def test_a_process_stops_at_its_armed_point_until_the_test_lets_it_go(tmp_path):
    pipe = faults.fifo_for(tmp_path, "here")
    script = ("from tre_core import faults; print('before', flush=True); faults.pause_at('elsewhere'); "
              "faults.pause_at('here'); print('after', flush=True)")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, faults.POINT_VARIABLE: "here", faults.FIFOS_VARIABLE: str(tmp_path)})
    assert process.stdout.readline().strip() == "before"
    with pipe.open("wb") as other_end:  # returns once the process has opened its end: it is at the point
        assert process.poll() is None
        other_end.write(b"go\n")
    assert process.stdout.readline().strip() == "after"
    assert process.wait(30) == 0


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_release_lease_is_held_by_one_at_a_time(database_url):
    with lease.release_lease(database_url, 7) as first:
        assert first
        with lease.release_lease(database_url, 7) as second:
            assert not second  # another session (on PostgreSQL, another connection) holds it
        with lease.release_lease(database_url, 8) as other_request:
            assert other_request
    with lease.release_lease(database_url, 7, wait=0.2) as again:
        assert again  # freed when the first left
