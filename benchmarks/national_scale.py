"""National scale, in one run: generation, registration, three SNDS queries in a workspace and on
the host, DuckDB against pandas, and the start of a workspace with a 1,000-file dataset.

    .venv/bin/python benchmarks/national_scale.py [--rows 100000000] [--rounds 3]

1. generation: ``demo/snds.py`` writes the SNDS-shaped datasets (claims cut into 1,000+ files);
2. registration (``tre datasets add``, manifest with sha256 of every file) in MB/s, against
   ``sha256sum`` over the same files;
3. three queries (people with a C10 dispensing by region and year; 30-day readmissions; claims in
   the 30 days after a discharge) with DuckDB in a real workspace against DuckDB on the host, both
   over the same files (the project's extracts, keyed by its pseudonym ``person_id``, as mounted)
   and with the workspace's CPU count as DuckDB threads;
4. the first query with DuckDB against pandas on the host;
5. right after a hub restart, the start of a workspace granted the 1,000-file claims against one
   granted a one-file dataset (the median of ``--rounds``).

Uses a hub of its own (free loopback ports, its own state folder), removed afterwards.

    .venv/bin/python benchmarks/national_scale.py --rows N --registration-only HOME

runs steps 1 and 2 only, without Docker or a hub: the data under ``HOME/data/national`` (kept, and
reused by the next run with the same ``--rows``), a catalogue in ``HOME/tre.sqlite``, and the
``tre`` command run as an admin would run it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import docker

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from datasets.manifest import build_manifest  # noqa: E402
from demo import snds  # noqa: E402
from tests.integration.conftest import Hub  # noqa: E402

QUERIES = {
    "C10 dispensing by region and year": """
        select region, year, count(distinct person_id) as people
        from read_parquet('{claims}/**/*.parquet', hive_partitioning = true)
        where atc_code like 'C10%' group by all order by all""",
    "30-day readmissions": """
        with ordered as (
          select person_id, discharge_date,
                 lead(admission_date) over (partition by person_id order by admission_date) as next_admission
          from read_parquet('{stays}/**/*.parquet', hive_partitioning = true))
        select count(*) filter (where date_diff('day', discharge_date, next_admission) between 0 and 30) as readmissions,
               count(*) as stays
        from ordered""",
    "claims within 30 days after discharge": """
        select count(*) as claims, count(distinct c.person_id) as people
        from read_parquet('{claims}/**/*.parquet', hive_partitioning = true) c
        join read_parquet('{stays}/**/*.parquet', hive_partitioning = true) s
          on c.person_id = s.person_id
         and c.care_date > s.discharge_date and c.care_date <= s.discharge_date + interval 30 day""",
}
TIMED = """
import duckdb, json, sys, time
threads, claims, stays, queries = int(sys.argv[1]), sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
con = duckdb.connect()
con.execute(f"set threads = {threads}")
con.execute("set enable_progress_bar = false")
out = {}
for name, sql in queries.items():
    sql = sql.format(claims=claims, stays=stays)
    con.sql(sql).fetchall()  # warm: metadata and page cache
    began = time.perf_counter()
    con.sql(sql).fetchall()
    out[name] = time.perf_counter() - began
print(json.dumps(out))
"""


def row(*cells: object) -> None:
    print("  ".join(f"{c:<54}" if i == 0 else f"{c:>16}" for i, c in enumerate(cells)))


def timed(function, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10**8, help="claims rows to generate")
    parser.add_argument("--rounds", type=int, default=3, help="starts of each workspace after a restart")
    parser.add_argument("--registration-only", type=Path, metavar="HOME",
                        help="generation and registration only, no Docker: data and catalogue kept in HOME")
    args = parser.parse_args()
    if args.registration_only:
        registration_only(args.registration_only.resolve(), args.rows)
        return
    client = docker.from_env(timeout=300)
    hub = Hub(client, scale=0.01, settings={"TRE_RECONCILE_INTERVAL": "2", "TRE_SCRUB_INTERVAL": "86400"})
    try:
        hub.start_process()
        run(hub, args)
    finally:
        hub.close()


def registration_only(home: Path, rows: int) -> None:
    """Steps 1 and 2: generation, then the manifest and `tre datasets add` against sha256sum."""
    from datasets import catalogue as cat
    from datasets.schema import upgrade
    from demo.commands import DEMO_CATALOGUE
    from tre_core.db import session_scope

    national = home / "data" / "national"
    seconds, _ = timed(snds.generate, national, rows=rows, rows_per_file=max(1000, -(-rows // 1200)))
    claims_dir = national / "claims"
    files = sorted(claims_dir.rglob("*.parquet"))
    size = sum(p.stat().st_size for p in files)
    print(f"\nRegistration: {rows:,} claims rows, {len(files):,} files, {size / 1e6:,.0f} MB (page cache warm)\n")
    row("measure", "TRE", "reference", "ratio")
    row("generation (claims rows/s)", f"{rows / seconds:,.0f}" if seconds > 1 else "reused", "", "")
    env = {**os.environ, "TRE_HOME": str(home), "TRE_DATABASE_URL": f"sqlite:///{home / 'tre.sqlite'}"}
    (home / "tre.sqlite").unlink(missing_ok=True)
    upgrade(env["TRE_DATABASE_URL"])
    for slug in ("beneficiaries", "claims", "hospital_stays", "referentials", "cohort"):  # the demo's folders
        if not (home / "data" / slug).is_dir():
            (home / "data" / slug).mkdir(parents=True)
            import pandas as pd
            pd.DataFrame({"patient_id": ["a", "b"]}).to_parquet(home / "data" / slug / f"{slug}.parquet")
    with session_scope(env["TRE_DATABASE_URL"]) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), home / "data")
    subprocess.run(["cat", *map(str, files)], check=True, stdout=subprocess.DEVNULL)  # into the page cache
    sha_seconds, _ = timed(subprocess.run, ["sha256sum", *map(str, files)], check=True, capture_output=True)
    built, _ = timed(build_manifest, claims_dir)
    row("manifest, in process (MB/s) vs sha256sum", f"{size / 1e6 / built:,.0f}", f"{size / 1e6 / sha_seconds:,.0f}",
        f"{sha_seconds / built:.2f}")
    reg_seconds, _ = timed(subprocess.run, [str(Path(sys.executable).parent / "tre"), "datasets", "add",
                                            "national_claims", "--as", "steward", "--path", "national/claims",
                                            "--title", "National claims", "--controller", "CNAM (synthetic)",
                                            "--version", "1"], env=env, check=True, capture_output=True)
    row("registration, `tre datasets add` (MB/s)", f"{size / 1e6 / reg_seconds:,.0f}", f"{size / 1e6 / sha_seconds:,.0f}",
        f"{sha_seconds / reg_seconds:.2f}")


def run(hub: Hub, args) -> None:
    national = hub.home / "data" / "national"
    rows_per_file = max(1000, -(-args.rows // 1200))  # claims in 1,200 files or more
    seconds, generated = timed(snds.generate, national, rows=args.rows, rows_per_file=rows_per_file)
    claims_dir = national / "claims"
    files = sorted(p for p in claims_dir.rglob("*.parquet"))
    size = sum(p.stat().st_size for p in files)
    print(f"\nNational-scale benchmark: {args.rows:,} claims rows, {len(files):,} claims files, {size / 1e6:,.0f} MB\n")
    row("measure", "TRE", "reference", "ratio")
    row("generation (claims rows/s)", f"{args.rows / seconds:,.0f}", "", "")

    # 2. registration against sha256sum (page cache warm for both: the files were just written)
    sha_seconds, _ = timed(subprocess.run, ["sha256sum", *map(str, files)], check=True, capture_output=True)
    built, _ = timed(build_manifest, claims_dir)
    row("manifest, in process (MB/s) vs sha256sum", f"{size / 1e6 / built:,.0f}", f"{size / 1e6 / sha_seconds:,.0f}",
        f"{sha_seconds / built:.2f}")
    reg_seconds, _ = timed(hub.tre, "datasets", "add", "national_claims", "--as", "steward", "--path", "national/claims",
                           "--title", "National claims", "--controller", "CNAM (synthetic)", "--version", "1")
    row("registration, `tre datasets add` (MB/s)", f"{size / 1e6 / reg_seconds:,.0f}", f"{size / 1e6 / sha_seconds:,.0f}",
        f"{sha_seconds / reg_seconds:.2f}")
    hub.tre("datasets", "add", "national_stays", "--as", "steward", "--path", "national/hospital_stays",
            "--title", "National stays", "--controller", "ATIH (synthetic)", "--version", "1")
    today = dt.date.today()
    for dataset in ("national_claims", "national_stays"):
        hub.tre("projects", "grant", "cardio-risk", dataset, "--as", "steward", "--reference", "BENCH-1",
                "--from", today.isoformat(), "--until", (today + dt.timedelta(days=30)).isoformat())

    # 3. the three queries in a workspace and on the host, same DuckDB threads
    alice = hub.login("alice")
    container = hub.start(alice, "alice", "cardio-risk")
    limits = container.attrs["HostConfig"]
    cpus = (limits["NanoCpus"] / 1e9 if limits.get("NanoCpus") else
            limits["CpuQuota"] / limits["CpuPeriod"] if limits.get("CpuQuota") else os.cpu_count())
    threads = max(1, int(cpus))
    # the host reads the very files the workspace mounts (the project's extracts); the two take turns,
    # five times, so that whatever else the machine does falls on both alike
    mounted = {m["Destination"]: m["Source"] for m in container.attrs["Mounts"]}
    inside_runs: list[dict] = []
    host_runs: list[dict] = []
    for _ in range(5):
        result = container.exec_run(["python3", "-c", TIMED, str(threads), "/data/national_claims",
                                     "/data/national_stays", json.dumps(QUERIES)], user="1000:100", demux=True)
        assert result.exit_code == 0, (result.output[1] or b"").decode()
        inside_runs.append(json.loads(result.output[0].decode().strip().splitlines()[-1]))
        host_runs.append(json.loads(subprocess.run(
            [sys.executable, "-c", TIMED, str(threads), mounted["/data/national_claims"],
             mounted["/data/national_stays"], json.dumps(QUERIES)], check=True, capture_output=True,
            text=True).stdout.strip().splitlines()[-1]))
    inside = {name: statistics.median(run[name] for run in inside_runs) for name in QUERIES}
    host = {name: statistics.median(run[name] for run in host_runs) for name in QUERIES}
    import duckdb

    claims_rows, stays_rows = (duckdb.sql(f"select count(*) from read_parquet('{mounted[f'/data/national_{t}']}/**/*.parquet')")
                               .fetchall()[0][0] for t in ("claims", "stays"))
    print(f"  (the project's extracts: {claims_rows:,} claims rows, {stays_rows:,} stays;"
          " median of 5 runs each, taking turns)")
    for name in QUERIES:
        row(f"{name} (s, {threads} thread)", f"{inside[name]:.3f}", f"{host[name]:.3f} host", f"{host[name] / inside[name]:.2f}")
    hub.stop(alice, "alice", "cardio-risk")

    # 4. DuckDB against pandas on the same query (at most 10^7 rows: pandas holds them in memory)
    import pandas as pd

    few = files[: max(1, len(files) * min(args.rows, 10**7) // args.rows)]
    paths = [str(p) for p in few]
    n_rows = sum(__import__("pyarrow.parquet").parquet.read_metadata(p).num_rows for p in paths)
    duck, _ = timed(lambda: duckdb.sql(f"select region, year(care_date) as year, count(distinct patient_id) from "
                                       f"read_parquet({paths!r}) where atc_code like 'C10%' group by all").fetchall())

    def with_pandas():
        frame = pd.concat(pd.read_parquet(p, columns=["patient_id", "care_date", "atc_code", "region"]) for p in paths)
        frame = frame[frame.atc_code.str.startswith("C10", na=False)]
        return frame.groupby([frame.region, pd.to_datetime(frame.care_date).dt.year], observed=True).patient_id.nunique()
    panda, _ = timed(with_pandas)
    row(f"C10 query, DuckDB vs pandas (s, {n_rows:,} rows)", f"{duck:.2f}", f"{panda:.2f} pandas", f"{panda / duck:.1f}")

    # 5. start right after a hub restart: 1,000+-file dataset against a one-file dataset
    for dataset in ("claims", "hospital_stays", "national_stays"):
        hub.tre("projects", "revoke", "cardio-risk", dataset, "--as", "steward")
    hub.tre("projects", "revoke", "diabetes-outcomes", "claims", "--as", "steward")  # bob keeps beneficiaries
    bob = hub.login("bob")
    starts: dict[str, list[float]] = {"many": [], "one": []}
    for _ in range(args.rounds):
        for kind, (session, user, project) in (("many", (alice, "alice", "cardio-risk")), ("one", (bob, "bob", "diabetes-outcomes"))):
            hub.stop_process()
            hub.start_process()
            seconds, _ = timed(hub.start, session, user, project)
            starts[kind].append(seconds)
            hub.stop(session, user, project)
            hub.wait_while_stopping(session, user, project)
    many, one = statistics.median(starts["many"]), statistics.median(starts["one"])
    row(f"start after restart (s): {len(files):,} files vs 1", f"{many:.2f}", f"{one:.2f} one file", f"{many / one:.2f}")


if __name__ == "__main__":
    main()
