"""Run the catalogue pages as the hub's managed service: ``python -m hub.catalogue_service``.

Address, prefix and OAuth client come from the hub's environment, the catalogue database from the
``TRE_*`` settings; ``hub.service_runner`` does the rest, as for every TRE service.
"""

from __future__ import annotations

import logging
import os
from functools import partial

from jupyterhub.services.auth import HubOAuth

from datasets.quotas import default_quotas, project_storage
from hub.catalogue_service.app import Site, make_app
from hub.service_runner import run_service
from tre_core.settings import TRESettings

log = logging.getLogger("tre.catalogue")


async def prepare():
    settings = TRESettings()
    site = Site(settings.catalogue_url, prefix=os.environ["JUPYTERHUB_SERVICE_PREFIX"],
                hub_prefix=HubOAuth.instance().hub_prefix,
                storage=partial(project_storage, workspaces_root=settings.workspaces_root,
                                defaults=default_quotas(settings)))
    return make_app(site), site.prefix


def main() -> None:
    run_service(prepare, "catalogue pages", log)


if __name__ == "__main__":
    main()
