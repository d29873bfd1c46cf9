"""Run a hub-managed service's command, and end it when the hub that started it is gone.

JupyterHub starts its managed services in sessions of their own, so a hub that crashes leaves
them running: an idle culler or a reconciler of a dead hub, holding its token, beside the ones
the restarted hub starts. ``python -m spawner.hub_child -- COMMAND...`` runs COMMAND, passes on
the hub's SIGINT or SIGTERM (JupyterHub stops a service with SIGINT, then SIGTERM), and stops
COMMAND within a second or two of the hub's disappearance. COMMAND also gets SIGTERM from the
kernel if this guard itself is killed outright (Linux's parent-death signal).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

GRACE_SECONDS = 10
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before it runs COMMAND: SIGTERM when this guard dies, however it dies."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _end(child: subprocess.Popen) -> None:
    child.terminate()
    try:
        child.wait(GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def run(command: list[str], poll_seconds: float = 1.0) -> int:
    hub = os.getppid()
    child = subprocess.Popen(command, preexec_fn=_die_with_parent)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: _end(child))
    while child.poll() is None:
        if os.getppid() != hub:
            print(f"hub_child: the hub (process {hub}) is gone; stopping {command[0]}", file=sys.stderr)
            _end(child)
            return 0
        time.sleep(poll_seconds)
    return child.returncode


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if not arguments:
        sys.exit("usage: python -m spawner.hub_child -- COMMAND [ARGUMENTS...]")
    sys.exit(run(arguments))


if __name__ == "__main__":
    main()
