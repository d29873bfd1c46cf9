"""The extraction service: builds the projects' extracts, outside the hub's event loop.

Every ``TRE_EXTRACTION_INTERVAL`` seconds one pass:

1. queues an extract for every grant in force that has no ready or queued one for its current spec
   (a grant approved or changed, a grant loaded from a catalogue file: ``extracts.jobs.enqueue_missing``),
   and a rebuild of every extract older than the opt-outs recorded since (``rebuild_for_optouts``);
2. starts the pending builds, each in a child process of its own (``python -m hub.extraction
   --build ID``, which runs ``extracts.build.run``), at most ``TRE_EXTRACTION_WORKERS`` at once, so
   that a long build holds back neither the next pass nor anything of the hub. A build killed in
   the middle (the hub stopped, a crash) leaves its ``.building-`` folder, never a mountable
   extract; the next pass takes it over and resumes it.

A workspace start waiting for its extract reads the progress the build writes in its row. Run by
the hub through ``hub.service_runner``, so that it stops with the hub that started it:
``python -m hub.service_runner -- python -m hub.extraction``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from extracts import build, jobs
from hub.service_runner import _die_with_parent
from tre_core.db import session_scope
from tre_core.settings import TRESettings

log = logging.getLogger("tre.extraction")


@dataclass
class Builds:
    """The build processes this service started, by extract id."""
    running: dict[int, subprocess.Popen] = field(default_factory=dict)

    def reap(self) -> None:
        for extract_id, child in list(self.running.items()):
            if child.poll() is not None:
                del self.running[extract_id]
                (log.info if child.returncode == 0 else log.error)(
                    "extract %d: build process ended with status %d", extract_id, child.returncode)

    def start(self, extract_id: int, take_over: bool) -> None:
        command = [sys.executable, "-m", "hub.extraction", "--build", str(extract_id)]
        if take_over:
            command.append("--take-over")
        log.info("extract %d: building%s", extract_id, " (taking over an interrupted build)" if take_over else "")
        # the build dies with this service, whatever kills it: the next pass resumes it
        self.running[extract_id] = subprocess.Popen(command, preexec_fn=_die_with_parent)

    def stop_all(self) -> None:
        for child in self.running.values():
            child.terminate()
        for child in self.running.values():
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()


def pass_once(settings: TRESettings, builds: Builds, now: dt.datetime | None = None) -> list[int]:
    """Queue what is missing, start what is pending; return the ids of the builds started."""
    now = now or dt.datetime.now(dt.UTC)
    with session_scope(settings.catalogue_url) as session:
        queued = jobs.enqueue_missing(session) + jobs.rebuild_for_optouts(session, now)
        if queued:
            log.info("queued extracts %s", ", ".join(str(e.id) for e in queued))
    builds.reap()
    with session_scope(settings.catalogue_url) as session:
        pending = [(e.id, e.status) for e in jobs.pending(session)]
    started = []
    for extract_id, status in pending:
        if extract_id in builds.running or len(builds.running) >= settings.extraction_workers:
            continue
        # a "building" row this service did not start was left by a build that died: take it over
        builds.start(extract_id, take_over=str(status) in ("building", "ExtractStatus.BUILDING"))
        started.append(extract_id)
    return started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=int, metavar="ID", help="build this one extract, then exit")
    parser.add_argument("--take-over", action="store_true", help="resume a build another process left")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s extraction] %(message)s")
    if args.build is not None:
        build.run(args.build, take_over=args.take_over)
        return
    settings = TRESettings()
    builds = Builds()

    def stop(*_):
        builds.stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        try:
            pass_once(settings, builds)
        except Exception:  # the database restarting, say: the next pass may succeed
            log.exception("pass failed; trying again in %ss", settings.extraction_interval)
        time.sleep(settings.extraction_interval)


if __name__ == "__main__":
    main()
