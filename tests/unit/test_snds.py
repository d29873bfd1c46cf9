"""The synthetic SNDS-shaped datasets: partitioned Parquet only, the same people across tables,
realistic skew, deterministic, and a disk check before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from datasets.manifest import build_manifest
from demo import snds

ROWS = 20_000


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("snds")
    return out, snds.generate(out, rows=ROWS)


def test_parquet_only_partitioned_by_year_and_month(generated):
    out, result = generated
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(snds.SLUGS)
    assert all(p.suffix == ".parquet" for p in out.rglob("*") if p.is_file() and p.parent != out)
    months = sorted(p.relative_to(out / "claims").as_posix() for p in (out / "claims").glob("year=*/month=*"))
    assert len(months) == 24 and months[0] == "year=2022/month=01"
    assert sorted(p.name for p in (out / "hospital_stays").iterdir()) == ["year=2022", "year=2023"]
    assert result["claims"].row_count == ROWS == len(pd.read_parquet(out / "claims"))
    for slug in snds.SLUGS:  # every dataset registers: one schema per table, Parquet only
        manifest = build_manifest(out / slug)
        assert manifest.row_count == result[slug].row_count
    assert set(build_manifest(out / "cohort").tables) == {"cohort", "linkage"}


def test_the_same_people_in_every_table(generated):
    out, _ = generated
    people = set(pd.read_parquet(out / "beneficiaries").patient_id)
    claims = pd.read_parquet(out / "claims", columns=["patient_id", "care_date"])
    stays = pd.read_parquet(out / "hospital_stays")
    linkage = pd.read_parquet(out / "cohort" / "linkage")
    cohort = pd.read_parquet(out / "cohort" / "cohort")
    assert set(claims.patient_id) <= people and set(stays.patient_id) <= people and set(linkage.patient_id) <= people
    assert 0.9 < len(linkage) / len(cohort) < 1.0 and "patient_id" not in cohort.columns
    deaths = pd.read_parquet(out / "beneficiaries").dropna(subset=["death_date"]).set_index("patient_id").death_date
    after = claims.join(deaths, on="patient_id", how="inner")
    assert (after.care_date <= after.death_date).all()  # nobody has care after death
    # 30-day readmissions exist, as in real PMSI data
    stays = stays.sort_values(["patient_id", "admission_date"])
    gap = (pd.to_datetime(stays.groupby("patient_id").admission_date.shift(-1)) - pd.to_datetime(stays.discharge_date)).dt.days
    assert ((gap >= 0) & (gap <= 30)).sum() > 0.03 * len(stays)


def test_realistic_skew(generated):
    out, _ = generated
    claims = pd.read_parquet(out / "claims")
    atc = claims.atc_code.value_counts(normalize=True)
    assert atc.index[0] == "N02BE01" and atc.iloc[0] > 0.2  # paracetamol dominates
    assert atc.get("A16AX07", 0) < 0.001  # an orphan drug is rare
    amounts = claims.amount_paid.value_counts(normalize=True)
    assert amounts.iloc[:3].sum() > 0.3  # a few tariffs dominate
    regions = claims.region.value_counts(normalize=True)
    assert regions["06"] < 0.02 < regions["11"]  # Mayotte is small, Île-de-France large
    assert claims.atc_code.str.startswith("C10").sum() > 0


def test_deterministic(generated, tmp_path):
    out, _ = generated
    again = snds.generate(tmp_path, rows=ROWS)
    assert again["claims"].row_count == ROWS
    for path in (out / "claims").rglob("*.parquet"):
        assert pq.read_table(path).equals(pq.read_table(tmp_path / "claims" / path.relative_to(out / "claims")))


def test_reused_when_asked_the_same(generated):
    out, _ = generated
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    snds.generate(out, rows=ROWS)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_many_files_when_asked(tmp_path):
    result = snds.generate(tmp_path, rows=24_000, rows_per_file=100)
    assert result["claims"].files == 24 * 10


def test_too_many_rows_for_the_disk_is_refused_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**12, 10**12 - 10**9, 10**9))
    with pytest.raises(snds.GeneratorError, match=r"need about .* GB but .* has 1.0 GB free; ask for at most"):
        snds.generate(tmp_path / "data", rows=10**9)
    assert not any((tmp_path / "data").iterdir())
