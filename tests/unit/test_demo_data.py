"""The synthetic demo data: deterministic, consistent across datasets, and shaped like the real thing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from datasets.demo_data import generate_demo_datasets

SCALE = 0.1


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, generate_demo_datasets(out, scale=SCALE)


def read(generated, slug: str, kind: str = "parquet") -> pd.DataFrame:
    out, _ = generated
    path = out / slug / f"{slug}.{kind}"
    return pd.read_parquet(path) if kind == "parquet" else pd.read_csv(path, dtype=str)


def test_same_seed_same_bytes(generated, tmp_path: Path):
    _, first = generated
    second = generate_demo_datasets(tmp_path, scale=SCALE)
    assert {s: g.files for s, g in first.items()} == {s: g.files for s, g in second.items()}
    other = generate_demo_datasets(tmp_path / "other-seed", scale=SCALE, seed=1)
    assert other["claims"].files != first["claims"].files


def test_sizes_and_columns(generated):
    _, result = generated
    assert {s: g.row_count for s, g in result.items()} == {"claims": 20_000, "hospital_stays": 3_000, "lab_results": 8_000}
    assert list(read(generated, "claims").columns) == [
        "patient_id", "sex", "birth_year", "region", "care_date", "act_code", "prescriber_specialty", "amount_reimbursed"]
    assert list(read(generated, "hospital_stays").columns) == [
        "stay_id", "patient_id", "sex", "age_at_admission", "admission_date", "discharge_date", "length_of_stay",
        "main_diagnosis", "ward", "discharge_mode", "region"]
    assert list(read(generated, "lab_results").columns) == [
        "patient_id", "result_date", "test_code", "test_label", "value", "unit"]


def test_csv_and_parquet_hold_the_same_rows(generated):
    for slug in ("claims", "hospital_stays", "lab_results"):
        parquet = read(generated, slug).astype(str)
        csv = read(generated, slug, "csv")
        assert parquet.shape == csv.shape
        assert (parquet["patient_id"] == csv["patient_id"]).all()


def test_datasets_join_on_one_population(generated):
    claims, stays, labs = (read(generated, s) for s in ("claims", "hospital_stays", "lab_results"))
    population = set(claims.patient_id) | set(stays.patient_id) | set(labs.patient_id)
    assert len(population) <= 2_500  # 25,000 people at scale 1
    assert len(set(stays.patient_id) & set(claims.patient_id)) > 0.5 * stays.patient_id.nunique()
    assert (pd.to_datetime(stays.discharge_date) - pd.to_datetime(stays.admission_date)).dt.days.equals(
        stays.length_of_stay.astype("int64"))


def test_realistic_shapes(generated):
    claims, stays, labs = (read(generated, s) for s in ("claims", "hospital_stays", "lab_results"))
    people = claims.drop_duplicates("patient_id")
    assert 0.5 < (people.sex == 2).mean() < 0.62
    assert claims.birth_year.between(1919, 2024).all()
    assert claims.region.nunique() >= 15 and claims.region.value_counts().idxmax() == "11"
    assert stays.age_at_admission.median() > 55  # hospital use rises with age
    assert 0.005 < (stays.discharge_mode == "deces").mean() < 0.06
    # rare diseases exist and give small counts, as real outputs do
    rare = stays[stays.main_diagnosis.isin(["E84.0", "G12.2", "Q90.9"])].groupby("region").size()
    assert 0 < rare.min() < 10
    assert (claims.amount_reimbursed >= 0).all()


def test_diabetics_have_higher_hba1c(generated):
    stays, labs = read(generated, "hospital_stays"), read(generated, "lab_results")
    diabetic = set(stays.patient_id[stays.main_diagnosis.str.startswith(("E10", "E11"))])
    hba1c = labs[labs.test_code == "4548-4"]
    assert hba1c[hba1c.patient_id.isin(diabetic)].value.median() > hba1c[~hba1c.patient_id.isin(diabetic)].value.median() + 0.5


def test_second_run_reuses_the_files(generated):
    out, _ = generated
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    generate_demo_datasets(out, scale=SCALE)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


def test_a_crashed_run_leaves_no_dataset_and_is_cleaned(tmp_path: Path):
    leftover = tmp_path / ".tmp-claims-99999"
    leftover.mkdir(parents=True)
    (leftover / "claims.parquet").write_bytes(b"half written")
    result = generate_demo_datasets(tmp_path, scale=0.02)
    assert not leftover.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims", "hospital_stays", "lab_results"]
    assert pd.read_parquet(result["claims"].directory / "claims.parquet").shape[0] == result["claims"].row_count
