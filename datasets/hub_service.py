"""What every TRE service the hub manages does around its own app (catalogue pages, egress review).

The hub passes where to listen (``JUPYTERHUB_SERVICE_URL``), the URL prefix and the OAuth client's
settings in the environment. It starts its services in a session of their own, so a hub that
crashes leaves them running: a service here stops when the hub that started it is gone, and waits
for its port to be free when it starts, so that a hub restarted after a crash gets a fresh one.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from urllib.parse import urlparse

from tornado.log import enable_pretty_logging
from tornado.web import Application


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
