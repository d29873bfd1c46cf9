"""The scrubber as a hub service: a pass over every active dataset version, then a pause.

Reads at most ``TRE_SCRUB_RATE_MB_S`` megabytes a second so that workspaces keep the disk;
what it finds is handled by ``datasets.scrub`` (suspension, audit row, message to the stewards)
and the reconciler stops the workspaces that mount a suspended version.
Run by the hub: ``python -m hub.scrubber``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from datasets.scrub import scrub_versions
from tre_core.settings import TRESettings

log = logging.getLogger("tre.scrubber")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s scrubber] %(message)s")
    settings = TRESettings()
    while True:
        try:
            # a restarted hub does not read everything again: only versions not scrubbed for an interval
            due = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.scrub_interval)
            results = scrub_versions(settings, rate_mb_s=settings.scrub_rate_mb_s, due_before=due)
            log.info("pass done: %d versions, %d suspended", len(results), sum(not r.ok for r in results))
        except Exception:  # the database restarting, say: the next pass may succeed
            log.exception("pass failed; trying again in %ss", settings.scrub_interval)
        time.sleep(settings.scrub_interval)


if __name__ == "__main__":
    main()
