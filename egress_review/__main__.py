"""Run the egress review as the hub's managed service: ``python -m egress_review``.

As the catalogue pages do (``hub.service_runner``), it takes its address, prefix and OAuth
client from the hub's environment and its database and folders from the ``TRE_*`` settings; it
stops when the hub that started it is gone. Before listening it sweeps store files that no row
names (a crash mid-submission leaves such orphans) and finishes any release a crash interrupted;
both are safe while other replicas of the service run (``Store.sweep``, ``Airlock.finish_release``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

from jupyterhub.services.auth import HubOAuth

from tre_core.deployment import require_sound_deployment
from hub.service_runner import run_service
from tre_core.settings import TRESettings
from egress_review import notify
from egress_review.app import Site, make_app
from egress_review.logic import Airlock, Limits
from egress_review.store import Store, create_once

log = logging.getLogger("tre.egress")
COOKIE_SECRET = "egress_cookie_secret"


def airlock_from(settings: TRESettings) -> Airlock:
    return Airlock(settings.catalogue_url, workspaces_root=settings.workspaces_root,
                   store=Store(settings.egress_root, slow_freeze=settings.egress_test_slow_freeze),
                   secrets_dir=settings.secrets_dir,
                   limits=Limits(settings.egress_max_file_bytes, settings.egress_max_request_bytes),
                   notify=notify.from_settings(settings), data_root=settings.data_root,
                   checks_cache=settings.home / "checks", extracts_root=settings.extracts_root)


async def prepare():
    settings = TRESettings()
    require_sound_deployment(settings)  # replicas coordinate through PostgreSQL's row locks
    airlock = airlock_from(settings)
    swept = await asyncio.to_thread(airlock.sweep_store)
    resumed = await asyncio.to_thread(airlock.resume_releases)
    log.info("Egress store: %d orphan files swept, releases finished: %s", swept, resumed or "none")
    site = Site(airlock, prefix=os.environ["JUPYTERHUB_SERVICE_PREFIX"], hub_prefix=HubOAuth.instance().hub_prefix)
    # One cookie secret for every replica (in the shared secrets folder): a person whose next page
    # is served by another replica stays signed in, and a restarted service keeps its sessions.
    cookie_secret = create_once(settings.secrets_dir / COOKIE_SECRET, secrets.token_bytes(32))
    return make_app(site, cookie_secret=cookie_secret), site.prefix


def main() -> None:
    run_service(prepare, "egress review", log)


if __name__ == "__main__":
    main()
