"""Run the package index as the hub's managed service: ``python -m package_index``.

The hub passes where to listen (``JUPYTERHUB_SERVICE_URL``: all addresses, on the index's port)
and its API token; ``jupyterhub_config.py`` runs this under the hub's child guard, which stops it
when the hub that started it is gone. A crashed predecessor may hold the port for a moment, so
listening is retried for a few seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from urllib.parse import urlparse

from tornado.log import enable_pretty_logging

from package_index.service import Index, hub_auth, make_app
from package_index.settings import PackageIndexSettings
from package_index.store import IndexStore

log = logging.getLogger("tre.packages")


async def serve() -> None:
    settings = PackageIndexSettings()
    app = make_app(Index(IndexStore(settings.package_root), settings.catalogue_url, hub_auth()))
    address = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    for attempt in range(60):
        try:
            app.listen(address.port, address.hostname)
            break
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == 59:
                raise
            await asyncio.sleep(0.25)
    log.info("package index at %s (pid %d), serving %s", os.environ["JUPYTERHUB_SERVICE_URL"], os.getpid(),
             settings.package_root)
    await asyncio.Event().wait()


def main() -> None:
    enable_pretty_logging()
    # the hub (through its child guard) stops a service with SIGINT, then SIGTERM
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
