"""Our disclosure checks against ACRO 1.0.2 on the same tables, and the identifier-leak scan.

    .venv/bin/python benchmarks/checks_vs_acro.py [--rows 1000000] [--ids 1000000] [--scan-mib 200]

From one synthetic table of ``--rows`` rows, three tables are built and checked from the raw rows,
by our engine (``egress_review.checks.from_data``) and by ACRO with the same thresholds (ACRO's
defaults: threshold 10, N-K (2, 0.9), p-ratio 0.1, zeros disclosive): a crosstab of counts, and a
pivot_table of the mean and of the sum of an amount. The flagged cells must be identical (the
script exits 1 otherwise); the times and their ratio are printed side by side.

Then the identifier-leak scan: an index of ``--ids`` identifiers is built, and a CSV output of
``--scan-mib`` MiB (with a few planted identifiers) is streamed against it, in a child process so
its peak resident memory is the scan's own. Throughput in MB/s and the peak are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from egress_review.checks.from_data import crosstab, pivot_table  # noqa: E402
from egress_review.checks.identifiers import IdentifierIndex  # noqa: E402

ACRO_RULES = {"MinimumThresholdCheck": "threshold", "PresenceOfZeroCheck": "zeros", "NKCheck": "nk-rule",
              "PPercentCheck": "p-ratio"}


def synthetic(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(2026)
    regions = [f"{r:02d}" for r in (11, 24, 27, 28, 32, 44, 52, 53, 75, 76, 84, 93, 94)]
    weights = np.linspace(1, 0.0001, len(regions))
    data = pd.DataFrame({"region": rng.choice(regions, rows, p=weights / weights.sum()),
                         "age_band": rng.choice([f"{a}-{a + 9}" for a in range(0, 100, 10)], rows),
                         "amount": rng.exponential(250.0, rows)})
    data.loc[rng.choice(rows, 20, replace=False), "amount"] = 5e6  # a few dominant contributors
    return data


def timed(act):
    start = time.perf_counter()
    value = act()
    return value, time.perf_counter() - start


def acro_cells(acro) -> dict[str, set]:
    record = list(acro.results.results.values())[-1]
    return {ACRO_RULES[k]: {tuple(c) for c in v} for k, v in record.sdc["cells"].items() if k in ACRO_RULES and v}


def compare_with_acro(data: pd.DataFrame) -> bool:
    import logging

    from acro import ACRO

    logging.disable(logging.INFO)
    workdir = tempfile.mkdtemp(prefix="tre-bench-acro-")
    os.chdir(workdir)
    acro = ACRO(suppress=False)
    cases = [
        ("crosstab of counts", lambda: crosstab(data.region, data.age_band),
         lambda: acro.crosstab(data.region, data.age_band)),
        ("pivot_table mean", lambda: pivot_table(data, "region", "age_band", "amount", "mean"),
         lambda: acro.pivot_table(data, index="region", columns="age_band", values="amount", aggfunc="mean")),
        ("pivot_table sum", lambda: pivot_table(data, "region", "age_band", "amount", "sum"),
         lambda: acro.pivot_table(data, index="region", columns="age_band", values="amount", aggfunc="sum")),
    ]
    same = True
    print(f"{'table':<22}{'ours (s)':>10}{'ACRO (s)':>10}{'ratio':>8}  flagged cells (ours = ACRO)")
    total_ours = total_acro = 0.0
    for name, ours, theirs in cases:
        mine, t_ours = timed(ours)
        _, t_acro = timed(theirs)
        total_ours, total_acro = total_ours + t_ours, total_acro + t_acro
        flags = {k: set(v) for k, v in mine.flags.items() if v}
        agree = flags == acro_cells(acro)
        same &= agree
        count = sum(len(v) for v in flags.values())
        print(f"{name:<22}{t_ours:>10.3f}{t_acro:>10.3f}{t_acro / t_ours:>8.1f}  {count} {'identical' if agree else 'DIFFERENT'}")
    print(f"{'all three':<22}{total_ours:>10.3f}{total_acro:>10.3f}{total_acro / total_ours:>8.1f}")
    return same


def _peak_mib() -> float:
    """This process's peak resident memory (VmHWM: reset at exec, unlike ru_maxrss)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scan_child(index_path: str, csv_path: str) -> None:
    """Run in a fresh process: load the index, stream the CSV, print JSON figures."""
    index = IdentifierIndex.load(Path(index_path))
    start_mib = _peak_mib()
    start, cpu = time.perf_counter(), time.process_time()
    _, total = index.scan_file(Path(csv_path))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "hits": total, "peak_mib": _peak_mib(),
                      "start_mib": start_mib}))


def identifier_scan(ids: int, scan_mib: int) -> None:
    rng = np.random.default_rng(7)
    identifiers = np.char.add("P", rng.integers(0, 10**12, ids).astype(str).astype(object).astype(str))
    with tempfile.TemporaryDirectory(prefix="tre-bench-scan-") as folder:
        index_path, csv_path = Path(folder) / "ids.arrow", Path(folder) / "output.csv"
        (index, build_s) = timed(lambda: IdentifierIndex.of_values(identifiers.tolist()))
        index.save(index_path)
        block = pd.DataFrame({"region": rng.choice(["11", "24", "84"], 200_000),
                              "label": rng.choice(["stay", "visit", "test result"], 200_000),
                              "n": rng.integers(10, 5000, 200_000),
                              "mean": rng.normal(50, 10, 200_000).round(3)}).to_csv(index=False).encode()
        with csv_path.open("wb") as stream:
            written = 0
            while written < scan_mib * 1024 * 1024:
                stream.write(block)
                written += len(block)
            stream.write(f"{identifiers[0]},leak,1,1.0\n{identifiers[-1]},leak,1,1.0\n".encode())
        size = csv_path.stat().st_size
        child = subprocess.run([sys.executable, __file__, "--scan-child", str(index_path), str(csv_path)],
                               capture_output=True, text=True, check=True)
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"\nidentifier index: {len(index)} identifiers built in {build_s:.2f} s "
              f"({index_path.stat().st_size / 1e6:.1f} MB on disk)")
        mb = size / 1e6
        print(f"scan: {mb:.0f} MB CSV in {figures['seconds']:.2f} s = {mb / figures['seconds']:.0f} MB/s "
              f"(CPU time {figures['cpu_seconds']:.2f} s = {mb / figures['cpu_seconds']:.0f} MB/s; the wall time "
              f"also counts the machine's other load), {figures['hits']} identifiers found (2 planted), "
              f"peak memory {figures['peak_mib']:.0f} MiB (before the scan, index loaded: {figures['start_mib']:.0f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--ids", type=int, default=1_000_000)
    parser.add_argument("--scan-mib", type=int, default=200)
    parser.add_argument("--scan-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scan_child:
        scan_child(*args.scan_child)
        return
    data = synthetic(args.rows)
    print(f"{args.rows} rows; ACRO's defaults on both sides\n")
    same = compare_with_acro(data)
    identifier_scan(args.ids, args.scan_mib)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
