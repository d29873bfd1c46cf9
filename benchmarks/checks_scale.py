"""The checks at scale: ``from_data.pivot_table`` against pandas, and the identifier index of a
partitioned dataset against its memory goal.

    .venv/bin/python benchmarks/checks_scale.py [--rows 1000000] [--rounds 3]
        [--index-dataset FOLDER | --index-rows 100000000]

1. From ``--rows`` synthetic rows (the table of ``checks_vs_acro.py``), ``pivot_table`` of the mean
   and of the sum of an amount: ours (the table and its threshold, N-K and p-ratio cells) against
   ``pandas.pivot_table`` (the table alone), alternating, best of ``--rounds`` each; goal ≤ 2×.
   ACRO 1.0.2 builds the same tables: the flagged cells must be identical (exit 1 otherwise).
2. The identifier index of a partitioned claims dataset (``patient_id`` and ``care_date``, as the
   egress review builds it from the catalogue's identifying columns), in a child process so that
   its peak resident memory (VmHWM) is the build's own; goal ≤ 2 GiB at 10^8 rows. The dataset is
   ``--index-dataset`` (a folder of Parquet files, e.g. the ``claims`` written by
   ``tre demo generate --rows N``) or is generated with ``--index-rows`` rows in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from checks_vs_acro import acro_cells, synthetic  # noqa: E402
from egress_review.checks.from_data import pivot_table  # noqa: E402

GIB = 1 << 30


def best(act, rounds: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(rounds):
        began = time.perf_counter()
        value = act()
        times.append(time.perf_counter() - began)
    return min(times), value


def pivots(rows: int, rounds: int) -> bool:
    from acro import ACRO

    data = synthetic(rows)
    logging.disable(logging.INFO)
    os.chdir(tempfile.mkdtemp(prefix="tre-bench-acro-"))
    acro = ACRO(suppress=False)
    print(f"pivot_table on {rows:,} rows (best of {rounds}, alternating; ACRO's defaults)\n")
    print(f"{'table':<18}{'ours (s)':>10}{'pandas (s)':>12}{'ours/pandas':>13}  flagged cells (ours = ACRO)")
    same = True
    for aggfunc in ("mean", "sum"):
        ours_t, pandas_t = [], []
        mine = None
        for _ in range(rounds):  # alternate, so that the machine's other load falls on both
            seconds, mine = best(lambda: pivot_table(data, "region", "age_band", "amount", aggfunc), 1)
            ours_t.append(seconds)
            seconds, _ = best(lambda: pd.pivot_table(data, index="region", columns="age_band", values="amount",
                                                     aggfunc=aggfunc), 1)
            pandas_t.append(seconds)
        acro.pivot_table(data, index="region", columns="age_band", values="amount", aggfunc=aggfunc)
        flags = {k: set(v) for k, v in mine.flags.items() if v}
        agree = flags == acro_cells(acro)
        same &= agree
        print(f"{aggfunc:<18}{min(ours_t):>10.3f}{min(pandas_t):>12.3f}{min(ours_t) / min(pandas_t):>13.2f}  "
              f"{sum(len(v) for v in flags.values())} {'identical' if agree else 'DIFFERENT'}")
    return same


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def index_child(folder: str) -> None:
    """In a fresh process: build the index of every Parquet file under ``folder``, print figures."""
    import pyarrow.parquet as pq

    from egress_review.checks.identifiers import IdentifierIndex

    files = sorted(Path(folder).rglob("*.parquet"))
    rows = sum(pq.read_metadata(p).num_rows for p in files)
    before = _peak_mib()
    began, cpu = time.perf_counter(), time.process_time()
    index = IdentifierIndex.from_parquet((p, ["patient_id", "care_date"]) for p in files)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    print(json.dumps({"files": len(files), "rows": rows, "values": len(index), "seconds": seconds,
                      "cpu_seconds": cpu, "peak_mib": _peak_mib(), "start_mib": before,
                      "index_mib": index.values.nbytes / (1 << 20)}))


def identifier_index(folder: Path) -> None:
    child = subprocess.run([sys.executable, __file__, "--index-child", str(folder)], capture_output=True, text=True,
                           check=True)
    f = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\nidentifier index of {folder} ({f['files']:,} files, {f['rows']:,} rows): {f['values']:,} values "
          f"({f['index_mib']:.0f} MiB) in {f['seconds']:.1f} s ({f['cpu_seconds']:.1f} CPU s)")
    print(f"{'peak resident memory (MiB)':<30}{f['peak_mib']:>10.0f}   goal {2 * 1024} MiB at 10^8 rows; "
          f"{f['peak_mib'] / 2048:.2f} of it (the process before the build: {f['start_mib']:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--index-dataset", type=Path, help="a folder of Parquet files with patient_id and care_date")
    parser.add_argument("--index-rows", type=int, default=10**8, help="claims rows to generate when no dataset is given")
    parser.add_argument("--skip-index", action="store_true")
    parser.add_argument("--index-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.index_child:
        index_child(args.index_child)
        return
    same = pivots(args.rows, args.rounds)
    if not args.skip_index:
        if args.index_dataset:
            identifier_index(args.index_dataset.resolve())
        else:
            from demo import snds

            with tempfile.TemporaryDirectory(prefix="tre-bench-index-", dir=REPO) as folder:
                snds.generate(Path(folder), rows=args.index_rows, rows_per_file=max(1000, -(-args.index_rows // 1200)))
                identifier_index(Path(folder) / "claims")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
