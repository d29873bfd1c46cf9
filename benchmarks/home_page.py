"""Cost of one hub home-page read with what waits for each person (catalogue and egress review
counts, ``hub.pages.home_page.HomePageSource.read``), its cache off, on a fresh demo catalogue in a
temporary TRE_HOME; prints milliseconds per read and where each role lands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 50


def main() -> None:
    home = tempfile.mkdtemp(prefix="tre-bench-home-")
    os.environ["TRE_HOME"] = home
    subprocess.run([Path(sys.executable).parent / "tre", "demo", "init", "--scale", "0.2"], check=True,
                   capture_output=True)
    from egress_review.__main__ import airlock_from
    from hub.pages.home_page import HomePageSource
    from tre_core.settings import TRESettings

    settings = TRESettings()
    egress = airlock_from(settings)
    source = HomePageSource(settings.catalogue_url, ttl_seconds=0, review_queue=egress.queue,
                            requests_of=egress.list_requests)
    for user in ("alice", "carol", "steward", "admin"):
        source.read(user)
        began = time.perf_counter()
        for _ in range(ROUNDS):
            page = source.read(user)
        print(f"{user}: {(time.perf_counter() - began) / ROUNDS * 1000:.1f} ms per read, "
              f"lands on {source.landing(page) or 'the home page'}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
