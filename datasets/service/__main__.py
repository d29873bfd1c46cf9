"""Run the catalogue pages as the hub's managed service: ``python -m datasets.service``.

Address, prefix and OAuth client come from the hub's environment, the catalogue database from the
``TRE_*`` settings; ``datasets.hub_service`` does the rest, as for every TRE service.
"""

from __future__ import annotations

import logging
import os

from jupyterhub.services.auth import HubOAuth

from datasets.hub_service import run_service
from datasets.service.app import Site, make_app
from datasets.settings import TRESettings

log = logging.getLogger("tre.catalogue")


async def prepare():
    site = Site(TRESettings().catalogue_url, prefix=os.environ["JUPYTERHUB_SERVICE_PREFIX"],
                hub_prefix=HubOAuth.instance().hub_prefix)
    return make_app(site), site.prefix


def main() -> None:
    run_service(prepare, "catalogue pages", log)


if __name__ == "__main__":
    main()
