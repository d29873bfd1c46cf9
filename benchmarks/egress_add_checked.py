"""What checking a file the moment it is added costs the researcher: adding a table to a draft
with the automatic checks (issue 16) against the same add without them.

    .venv/bin/python benchmarks/egress_add_checked.py [--rows 200] [--rounds 7]

Both sides run the real airlock on a fresh SQLite TRE database with the demo catalogue: the checked
side is ``Airlock.add_file`` (row written, then the file copied into the store and every rule run in
its bounded child process); the plain side is the same act with the early check turned off, as
before. Medians of ``--rounds`` adds are printed, and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    # imported here: the checks' child processes import this script again (as the service's children
    # import ``egress_review.__main__``), so its top level must stay as light as the service's
    import pandas as pd

    from datasets import catalogue as cat
    from datasets.schema import upgrade
    from demo.commands import DEMO_CATALOGUE
    from egress_review.logic import Airlock, Limits
    from egress_review.store import Store
    from tre_core.db import session_scope

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tre-add-") as folder:
        root = Path(folder)
        url = f"sqlite:///{root / 'tre.sqlite'}"
        upgrade(url)
        for slug in ("beneficiaries", "claims", "hospital_stays", "referentials", "cohort"):  # stand-ins
            (root / "data" / slug).mkdir(parents=True)
            pd.DataFrame({"patient_id": ["a", "b"], "value": [1, 2]}).to_parquet(root / "data" / slug / "t.parquet")
        with session_scope(url) as session:
            cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), root / "data")
        outputs = root / "workspaces" / "cardio-risk" / "shared" / "outputs"
        outputs.mkdir(parents=True)
        lines = ["region,age_band,stays"] + [f"R{i},40-59,{10 + i}" for i in range(args.rows)]
        (outputs / "table.csv").write_text("\n".join(lines) + "\n")
        airlock = Airlock(url, workspaces_root=root / "workspaces", store=Store(root / "egress"),
                          secrets_dir=root / "secrets", limits=Limits(10 << 20, 50 << 20))
        plain = Airlock(url, workspaces_root=root / "workspaces", store=Store(root / "egress"),
                        secrets_dir=root / "secrets", limits=Limits(10 << 20, 50 << 20))
        plain._check_now = lambda *args: None  # the act as it was before issue 16
        times: dict[str, list[float]] = {"checked": [], "plain": []}
        for round_ in range(args.rounds + 1):
            for name, which in (("checked", airlock), ("plain", plain)):
                request = which.create("alice", "cardio-risk", f"{name} {round_}")
                started = time.perf_counter()
                which.add_file("alice", request, "outputs/table.csv", "T", "output", context="c", controls="k")
                if round_:  # the first round warms the check process and the page cache
                    times[name].append(time.perf_counter() - started)
        checked, plain_ = statistics.median(times["checked"]), statistics.median(times["plain"])
        print(f"add a {args.rows}-row table, median of {args.rounds}: with the checks {checked * 1000:.0f} ms, "
              f"without {plain_ * 1000:.0f} ms, ratio {checked / plain_:.1f}")


if __name__ == "__main__":
    main()
