"""A project's extract against a plain DuckDB COPY of the same columns and rows; pseudonym collisions.

    .venv/bin/python benchmarks/extracts.py [--rows 100000000] [--rounds 1] [--people-collisions 10000000]

1. ``demo/snds.py`` writes SNDS-shaped claims over ten years (``year=/month=`` partitions), widened
   to 12 columns; the claims are registered as a dataset version (manifest, root hash);
2. a project is granted 3 of the 12 columns over 2 of the 10 years, 1 % of the people object;
3. ``extracts.build.run`` (distinct-person table, project pseudonyms, opt-outs left out, one COPY
   per partition, manifest with every file hashed, atomic rename) is timed against a plain DuckDB
   ``COPY`` of the same columns and rows (person key kept, nobody left out, partitioned the same
   way), with the same threads, after one untimed read so both find the files warm;
4. pseudonyms of 10⁷ distinct person keys under one project key: collisions counted (goal 0).

Goal: the extract at most 1.5× the plain COPY. Everything is made in a folder of its own, removed
afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

YEARS = tuple(range(2014, 2024))
GRANTED_YEARS = (2018, 2019)
COLUMNS = ["care_date", "atc_code", "amount_paid"]


def generate(data_root: Path, rows: int) -> Path:
    """Claims of ten years from the demo generator, widened to 12 columns, in ``data_root/claims``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from demo import snds

    snds.YEARS = YEARS  # the generator reads its years, first day and length at call time
    snds.START = np.datetime64(f"{YEARS[0]}-01-01", "D")
    snds.DAYS = int((np.datetime64(f"{YEARS[-1] + 1}-01-01", "D") - snds.START).astype(np.int64))
    people = snds._beneficiaries(np.random.default_rng([snds.SEED, 0]), snds.people_for(rows))
    claims = data_root / "claims"
    snds._claims(claims, people, rows, snds.SEED, 1_000_000, None)
    for index, path in enumerate(sorted(claims.rglob("*.parquet"))):  # four more SNDS-like columns
        table = pq.read_table(path)
        rng = np.random.default_rng([snds.SEED, 9, index])
        n = table.num_rows
        table = (table.append_column("quantity", pa.array(rng.choice([1, 1, 1, 2, 3], n).astype(np.int16)))
                 .append_column("pharmacy_finess", pa.array(np.char.add("0", rng.integers(10**7, 10**8, n).astype("U8"))))
                 .append_column("prescription_date", pa.array(
                     table["care_date"].to_numpy() - rng.integers(0, 30, n).astype("timedelta64[D]"), pa.date32()))
                 .append_column("care_kind", pa.array(rng.choice(np.array(["pharmacy", "gp", "nurse", "lab"]), n)).dictionary_encode()))
        pq.write_table(table, path, compression="zstd")
    return claims


def setup_catalogue(url: str, data_root: Path, optout_share: float) -> tuple[int, list[str]]:
    """Register the claims, a project granted 3 columns over 2 years; some people object."""
    import duckdb

    from datasets import workflow
    from datasets.models import Dataset, Person, Project, ProjectStatus
    from datasets.schema import upgrade
    from datasets.versions import manifest_of
    from extracts import jobs, optouts
    from tre_core.db import session_scope

    upgrade(url)
    with session_scope(url) as session:
        session.add(Person(username="steward", display_name="Steward", is_data_steward=True))
        session.add(Project(slug="bench", title="Benchmark", principal_investigator="PI", approval_reference="B-1",
                            status=ProjectStatus.ACTIVE))
        session.flush()
        dataset = Dataset(slug="claims", title="Claims", data_controller="bench", sensitivity="pseudonymised",
                          version="1", storage_path="claims", columns=[])
        workflow.register_dataset(session, "steward", dataset, manifest_of(data_root, "claims"), data_root)
    keys = [r[0] for r in duckdb.sql(f"SELECT patient_id FROM (SELECT DISTINCT patient_id FROM read_parquet("
                                     f"'{data_root}/claims/**/*.parquet')) USING SAMPLE {optout_share * 100}% "
                                     "(bernoulli, 7)").fetchall()]
    with session_scope(url) as session:
        grant = workflow.add_grant(session, "steward", "bench", "claims", starts_on=dt.date(2026, 1, 1),
                                   ends_on=dt.date(2028, 12, 31), approval_reference="B-1", spec={
                                       "columns": COLUMNS, "period": {"from": dt.date(GRANTED_YEARS[0], 1, 1),
                                                                      "until": dt.date(GRANTED_YEARS[-1], 12, 31)}})
        optouts.add(session, "steward", [(k, dt.date(2026, 12, 1)) for k in keys], "benchmark")
        return jobs.enqueue_for_grant(session, grant).id, keys


def plain_copy(data_root: Path, out: Path, threads: int) -> float:
    import duckdb

    shutil.rmtree(out, ignore_errors=True)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET preserve_insertion_order = false")
    started = time.perf_counter()
    con.execute(f"""COPY (SELECT patient_id, {', '.join(COLUMNS)}, year, month
                    FROM read_parquet('{data_root}/claims/**/*.parquet', hive_partitioning = true)
                    WHERE year IN {GRANTED_YEARS} AND care_date BETWEEN DATE '{GRANTED_YEARS[0]}-01-01'
                      AND DATE '{GRANTED_YEARS[-1]}-12-31')
                    TO '{out}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (year, month))""")
    return time.perf_counter() - started


def extract(url: str, extract_id: int) -> tuple[float, int]:
    from extracts import build, jobs
    from datasets.models import Extract, Grant
    from tre_core.db import session_scope

    with session_scope(url) as session:  # a fresh row each round: the same grant, built again
        done = session.get(Extract, extract_id)
        if done.status.value == "ready":
            extract_id = jobs._new(session, session.get(Grant, done.grant_id), done.spec_digest).id
    started = time.perf_counter()
    build.run(extract_id)
    return time.perf_counter() - started, extract_id


def collisions(people: int) -> tuple[int, float]:
    import duckdb

    from extracts import pseudonyms

    ipad, opad = pseudonyms.pads(os.urandom(32))
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE hk AS SELECT ?::BLOB AS ipad, ?::BLOB AS opad", [ipad, opad])
    started = time.perf_counter()
    distinct = con.execute(f"SELECT count(DISTINCT {pseudonyms.pseudonym_sql('k')}) FROM "
                           f"(SELECT printf('%016x', range * 2654435761 + 97) AS k FROM range({people})), hk").fetchone()[0]
    return people - distinct, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--people-collisions", type=int, default=10_000_000)
    parser.add_argument("--optout-share", type=float, default=0.01)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tre-bench-extracts-"))
    home = work / "home"
    os.environ.update(TRE_HOME=str(home), TRE_DATABASE_URL=f"sqlite:///{home / 'tre.sqlite'}")
    threads = os.cpu_count() or 1
    try:
        started = time.perf_counter()
        generate(home / "data", args.rows)
        generated = time.perf_counter() - started
        url = os.environ["TRE_DATABASE_URL"]
        extract_id, objected = setup_catalogue(url, home / "data", args.optout_share)
        plain_copy(home / "data", work / "warm", threads)  # untimed: both read warm files
        plain, ours = [], []
        for _ in range(args.rounds):
            plain.append(plain_copy(home / "data", work / "plain", threads))
            seconds, extract_id = extract(url, extract_id)
            ours.append(seconds)
        from datasets.models import Extract
        from tre_core.db import session_scope

        with session_scope(url) as session:
            row = session.get(Extract, extract_id)
            people, root = row.people, row.root_hash
        import duckdb

        plain_rows = duckdb.sql(f"SELECT count(*), count(DISTINCT patient_id) FROM read_parquet('{work / 'plain'}/**/*.parquet')").fetchall()[0]
        our_rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{home / 'extracts' / 'bench'}/claims@1/**/*.parquet')").fetchall()[0][0]
        collided, hashing = collisions(args.people_collisions)
    finally:
        if not args.keep:
            for path in work.rglob("*"):
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
            shutil.rmtree(work, ignore_errors=True)
    p, o = statistics.median(plain), statistics.median(ours)
    print(f"claims: {args.rows:,} rows, 12 columns, {len(YEARS)} years in {len(YEARS) * 12} monthly partitions "
          f"(generated in {generated:.1f} s); {len(objected):,} people objected ({args.optout_share:.0%})")
    print(f"granted: {', '.join(COLUMNS)} (3 of 12 columns), {GRANTED_YEARS[0]}-{GRANTED_YEARS[-1]} (2 of 10 years); "
          f"DuckDB threads {threads}; median of {args.rounds} round(s)")
    print(f"{'':<58}{'seconds':>10}{'rows':>14}{'people':>10}")
    print(f"{'plain DuckDB COPY (person key kept, nobody left out)':<58}{p:>10.2f}{plain_rows[0]:>14,}{plain_rows[1]:>10,}")
    print(f"{'extract (pseudonyms, opt-outs, manifest, atomic rename)':<58}{o:>10.2f}{our_rows:>14,}{people:>10,}")
    print(f"ratio extract / plain COPY: {o / p:.2f} (goal <= 1.5); extract root hash {root[:16]}…")
    print(f"pseudonym collisions over {args.people_collisions:,} people: {collided} (goal 0), "
          f"computed in {hashing:.1f} s ({args.people_collisions / hashing:,.0f} pseudonyms/s)")


if __name__ == "__main__":
    main()
