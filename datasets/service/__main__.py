"""Run the catalogue pages as the hub's managed service: ``python -m datasets.service``.

The hub passes where to listen (``JUPYTERHUB_SERVICE_URL``), the URL prefix
(``JUPYTERHUB_SERVICE_PREFIX``) and the OAuth client's settings in the environment, as for any
managed service; the catalogue database comes from the ``TRE_*`` settings.

The hub starts its services in a session of their own, so a hub that crashes leaves them running.
This one stops when the hub that started it is gone, and waits for its port to be free when it
starts, so that a hub restarted after a crash gets its own, fresh catalogue pages.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
from urllib.parse import urlparse

from jupyterhub.services.auth import HubOAuth
from tornado.log import enable_pretty_logging
from tornado.web import Application

from datasets.service.app import Site, make_app
from datasets.settings import TRESettings

log = logging.getLogger("tre.catalogue")


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


async def serve() -> None:
    enable_pretty_logging()
    hub = os.getppid()
    site = Site(TRESettings().catalogue_url, prefix=os.environ["JUPYTERHUB_SERVICE_PREFIX"],
                hub_prefix=HubOAuth.instance().hub_prefix)
    address = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    await listen(make_app(site), address.port, address.hostname)
    log.info("Catalogue pages at %s%s", os.environ["JUPYTERHUB_SERVICE_URL"], site.prefix)
    while os.getppid() == hub:
        await asyncio.sleep(1)
    log.warning("The hub that started these pages (process %s) is gone; stopping.", hub)


def main() -> None:
    # JupyterHub stops a service with SIGINT first; a hub started in the background by a shell
    # (./setup.sh demo) hands its services SIGINT ignored, and each stop then waited 10 s for it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass  # the hub asked this service to stop


if __name__ == "__main__":
    main()
