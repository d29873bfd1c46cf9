"""A hub service's command outlives no hub: ``hub.service_runner`` ends it once its hub is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

# Stands for the hub: starts hub.service_runner (which starts a long sleep), prints the sleep's pid, waits.
FAKE_HUB = (
    "import subprocess, sys, time\n"
    "guard = subprocess.Popen([sys.executable, '-m', 'hub.service_runner', '--', 'sleep', '600'])\n"
    "time.sleep(600)\n"
)


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except FileNotFoundError:
        return []


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_the_command_ends_when_the_hub_is_killed():
    hub = subprocess.Popen([sys.executable, "-c", FAKE_HUB], start_new_session=True)
    try:
        wait_until(lambda: children_of(hub.pid), 30, "the guard started")
        guard = children_of(hub.pid)[0]
        wait_until(lambda: children_of(guard), 30, "the command started")
        command = children_of(guard)[0]
        os.kill(hub.pid, signal.SIGKILL)  # a crash: the hub cannot pass anything on
        hub.wait()
        wait_until(lambda: not alive(command), 30, "the command ended after its hub")
        wait_until(lambda: not alive(guard), 30, "the guard ended too")
    finally:
        try:
            os.killpg(hub.pid, signal.SIGKILL)  # whatever is left of the group, if the test failed
        except ProcessLookupError:
            pass


def test_the_hubs_sigterm_reaches_the_command():
    guard = subprocess.Popen([sys.executable, "-m", "hub.service_runner", "--", "sleep", "600"])
    try:
        wait_until(lambda: children_of(guard.pid), 30, "the command started")
        command = children_of(guard.pid)[0]
        guard.send_signal(signal.SIGTERM)
        wait_until(lambda: not alive(command), 30, "the command ended")
        guard.wait(30)
    finally:
        guard.kill()


def test_the_command_ends_even_when_the_guard_itself_is_killed():
    guard = subprocess.Popen([sys.executable, "-m", "hub.service_runner", "--", "sleep", "600"])
    try:
        wait_until(lambda: children_of(guard.pid), 30, "the command started")
        command = children_of(guard.pid)[0]
        guard.kill()  # SIGKILL: the guard can pass nothing on; the kernel's parent-death signal does
        guard.wait()
        wait_until(lambda: not alive(command), 30, "the command ended")
    finally:
        guard.kill()


def test_sigint_as_jupyterhub_sends_first_reaches_the_command():
    guard = subprocess.Popen([sys.executable, "-m", "hub.service_runner", "--", "sleep", "600"])
    try:
        wait_until(lambda: children_of(guard.pid), 30, "the command started")
        command = children_of(guard.pid)[0]
        guard.send_signal(signal.SIGINT)
        wait_until(lambda: not alive(command), 30, "the command ended")
        guard.wait(30)
    finally:
        guard.kill()
