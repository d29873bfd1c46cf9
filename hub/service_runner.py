"""Every hub-managed service's one rule: stop when the hub that started it is gone.

JupyterHub starts its managed services in sessions of their own, so a hub that crashes leaves
them running: an idle culler, a reconciler or a web service of a dead hub, holding its token,
beside the ones the restarted hub starts. Two ways to keep to the rule live here:

- ``python -m hub.service_runner -- COMMAND...`` runs COMMAND (a program that is not ours, the idle
  culler, or the reconciler), passes on the hub's SIGINT or SIGTERM (JupyterHub stops a service
  with SIGINT, then SIGTERM), and stops COMMAND within a second or two of the hub's
  disappearance. COMMAND also gets SIGTERM from the kernel if this guard itself is killed outright
  (Linux's parent-death signal).
- ``run_service(prepare, ...)`` runs a Tornado app of ours (catalogue pages, egress review) in this
  process: where to listen (``JUPYTERHUB_SERVICE_URL``) comes from the hub's environment; it waits
  for its port to be free when it starts, so that a hub restarted after a crash gets a fresh one.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

from tornado.log import enable_pretty_logging
from tornado.web import Application

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
            print(f"service_runner: the hub (process {hub}) is gone; stopping {command[0]}", file=sys.stderr)
            _end(child)
            return 0
        time.sleep(poll_seconds)
    return child.returncode


async def listen(app: Application, port: int, address: str, wait: float = 15.0) -> None:
    """Listen on the port, waiting up to ``wait`` seconds for a predecessor to let it go."""
    for _ in range(int(wait / 0.25)):
        try:
            app.listen(port, address, xheaders=True)
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            await asyncio.sleep(0.25)
    app.listen(port, address, xheaders=True)  # the last try says what is in the way


async def _serve(prepare: Callable[[], Awaitable[tuple[Application, str]]], what: str, log: logging.Logger) -> None:
    enable_pretty_logging()
    hub = os.getppid()
    app, prefix = await prepare()
    address = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    await listen(app, address.port, address.hostname)
    log.info("%s at %s%s (pid %d)", what, os.environ["JUPYTERHUB_SERVICE_URL"], prefix, os.getpid())
    while os.getppid() == hub:
        await asyncio.sleep(1)
    log.warning("The hub that started the %s (process %s) is gone; stopping.", what, hub)


def run_service(prepare: Callable[[], Awaitable[tuple[Application, str]]], what: str, log: logging.Logger) -> None:
    """Run the app ``prepare`` makes (with its URL prefix) until the hub stops it or is gone."""
    # JupyterHub stops a service with SIGINT first; a hub started in the background by a shell
    # (./setup.sh demo) hands its services SIGINT ignored, and each stop then waited 10 s for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(_serve(prepare, what, log))
    except KeyboardInterrupt:
        pass  # the hub asked this service to stop


def main() -> None:
    arguments = sys.argv[1:]
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if not arguments:
        sys.exit("usage: python -m hub.service_runner -- COMMAND [ARGUMENTS...]")
    sys.exit(run(arguments))


if __name__ == "__main__":
    main()
