"""The synthetic demo data: deterministic, written whole or not at all, consistent across datasets,
and shaped like the French national health data it stands in for."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from datasets import demo_data
from datasets.demo_data import COLUMNS, DEMO_SEED, generate_demo_datasets, icd10_chapter, population_table

SCALE = 0.05  # 1,250 people, about 10,000 claims: fast, yet big enough for the shapes to show
SLUGS = ("claims", "hospital_stays", "lab_results")
EXPECTED_ROWS = {"claims": 200_000, "hospital_stays": 30_000, "lab_results": 80_000}  # at scale 1.0
CATALOGUE = Path(demo_data.__file__).with_name("demo_catalogue.yaml")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    return generate_demo_datasets(tmp_path_factory.mktemp("data"), scale=SCALE)


@pytest.fixture(scope="module")
def frames(generated):
    return {slug: read_parquet(generated[slug]) for slug in SLUGS}


def read_parquet(dataset) -> pd.DataFrame:
    return pq.read_table(dataset.directory / f"{dataset.slug}.parquet").to_pandas()


def read_csv(dataset) -> pd.DataFrame:
    columns = COLUMNS[dataset.slug]
    kinds = {"string": str, "category": str, "integer": "int64", "decimal": "float64"}
    return pd.read_csv(dataset.directory / f"{dataset.slug}.csv", keep_default_na=False,
                       dtype={c.name: kinds[c.dtype] for c in columns if c.dtype != "date"},
                       parse_dates=[c.name for c in columns if c.dtype == "date"], date_format="%Y-%m-%d")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_same_seed_and_scale_give_the_same_bytes(generated, tmp_path: Path):
    again = generate_demo_datasets(tmp_path / "again", scale=SCALE)
    for slug in SLUGS:
        assert again[slug].files == generated[slug].files
        assert again[slug].directory != generated[slug].directory
        for name, digest in again[slug].files.items():
            assert sha256(again[slug].directory / name) == digest
    other = generate_demo_datasets(tmp_path / "other", scale=SCALE, seed=DEMO_SEED + 1)
    assert all(other[slug].files != generated[slug].files for slug in SLUGS)


def test_each_dataset_is_a_parquet_and_a_csv_file_with_its_columns(generated):
    assert DEMO_SEED == 20261123
    for slug in SLUGS:
        dataset = generated[slug]
        assert dataset.slug == slug and dataset.directory.name == slug
        assert sorted(p.name for p in dataset.directory.iterdir() if not p.name.startswith(".")) == sorted(dataset.files)
        assert sorted(dataset.files) == [f"{slug}.csv", f"{slug}.parquet"]
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in dataset.files.values())
        assert pq.read_metadata(dataset.directory / f"{slug}.parquet").num_rows == dataset.row_count
        assert dataset.row_count == pytest.approx(EXPECTED_ROWS[slug] * SCALE, rel=0.15)
        assert pq.read_schema(dataset.directory / f"{slug}.parquet").names == [c.name for c in dataset.columns]
        header = (dataset.directory / f"{slug}.csv").read_text(encoding="utf-8").split("\n", 1)[0]
        assert header.split(",") == [c.name for c in dataset.columns]
        # readable by the workspaces' unprivileged user
        assert dataset.directory.stat().st_mode & 0o777 == 0o755
        assert all((dataset.directory / name).stat().st_mode & 0o777 == 0o644 for name in dataset.files)


def test_columns_say_which_are_identifiers_as_the_catalogue_does(generated):
    kinds = {c.name: c.identifier for slug in SLUGS for c in generated[slug].columns}
    assert kinds["patient_id"] == kinds["stay_id"] == "direct"
    assert all(kinds[name] == "indirect" for name in (
        "birth_year", "region", "care_date", "admission_date", "discharge_date", "result_date"))
    assert kinds["amount_reimbursed"] is None and kinds["main_diagnosis"] is None
    catalogue = {d["slug"]: d["columns"] for d in yaml.safe_load(CATALOGUE.read_text(encoding="utf-8"))["datasets"]}
    for slug in SLUGS:
        assert [(c.name, c.dtype, c.identifier) for c in generated[slug].columns] == [
            (c["name"], c["type"], c.get("identifier")) for c in catalogue[slug]]


def test_csv_and_parquet_hold_the_same_data(generated, frames):
    for slug in SLUGS:
        parquet = frames[slug].copy()
        for column in generated[slug].columns:
            if column.dtype == "category":
                parquet[column.name] = parquet[column.name].astype(str)
            elif column.dtype == "date":
                parquet[column.name] = pd.to_datetime(parquet[column.name])
            elif column.dtype == "integer":
                parquet[column.name] = parquet[column.name].astype("int64")
        pd.testing.assert_frame_equal(read_csv(generated[slug]), parquet, check_exact=True)
    # amounts in euros and cents, as text too
    amounts = pd.read_csv(generated["claims"].directory / "claims.csv", dtype=str).amount_reimbursed
    assert amounts.str.fullmatch(r"\d+\.\d\d").all()


def test_the_datasets_join_on_one_population(frames):
    population = population_table(scale=SCALE).to_pandas().set_index("patient_id")
    assert population.index.is_unique and population.index.str.fullmatch(r"[0-9a-f]{17}").all()
    for slug in SLUGS:
        assert set(frames[slug].patient_id) <= set(population.index)
    for slug, columns in (("claims", ["sex", "birth_year", "region"]), ("hospital_stays", ["sex", "region"])):
        rows = frames[slug]
        for column in columns:
            expected = population.loc[rows.patient_id, column].to_numpy()
            assert (rows[column].to_numpy() == expected).all(), f"{slug}.{column} disagrees with the population"
    stays = frames["hospital_stays"]
    assert stays.stay_id.is_unique
    births = population.loc[stays.patient_id, "birth_year"].to_numpy()
    assert ((stays.admission_date.map(lambda d: d.year) - births - stays.age_at_admission).between(0, 1)).all()


def test_stays_are_consistent_in_time(frames):
    stays = frames["hospital_stays"].copy()
    admission, discharge = pd.to_datetime(stays.admission_date), pd.to_datetime(stays.discharge_date)
    assert ((discharge - admission).dt.days == stays.length_of_stay).all()
    assert admission.min() >= pd.Timestamp("2023-01-01") and discharge.max() <= pd.Timestamp("2024-12-31")
    # one person's stays never overlap
    stays = stays.assign(admission=admission, discharge=discharge).sort_values(["patient_id", "admission"])
    previous = stays.groupby("patient_id").discharge.shift()
    assert not (stays.admission < previous).any()
    # nothing happens after a death in hospital, and no outpatient act during a stay
    deaths = stays[stays.discharge_mode == "death"].groupby("patient_id").discharge.min()
    assert deaths.size > 0
    assert not (stays.admission > stays.patient_id.map(deaths)).any()
    for slug, date in (("claims", "care_date"), ("lab_results", "result_date")):
        when = pd.to_datetime(frames[slug][date])
        assert not (when >= frames[slug].patient_id.map(deaths)).any(), f"{slug} on or after a death"
    claims = frames["claims"].assign(day=pd.to_datetime(frames["claims"].care_date))
    inside = claims.merge(stays[stays.length_of_stay > 1], on="patient_id")
    assert not ((inside.day > inside.admission) & (inside.day < inside.discharge)).any()


def test_people_look_like_the_french_population(frames):
    population = population_table(scale=SCALE).to_pandas()
    assert 0.47 < (population.sex == 2).mean() < 0.56  # 51.6 % women
    age = 2023 - population.birth_year
    assert age.min() >= 0 and age.max() <= 106 and 38 < age.mean() < 46
    assert 0.13 < (age >= 70).mean() < 0.21
    assert population.region.value_counts().idxmax() == "11"  # Île-de-France
    assert population.region.isin(["01", "02", "03", "04", "06"]).any()  # overseas regions too


def test_hospital_use_and_deaths_rise_with_age(frames):
    stays = frames["hospital_stays"]
    population = population_table(scale=SCALE).to_pandas()
    age = 2023 - population.birth_year
    per_person = stays.patient_id.value_counts().reindex(population.patient_id, fill_value=0).to_numpy()
    assert per_person[age >= 75].mean() > 2 * per_person[(age >= 15) & (age < 45)].mean()
    died = stays.discharge_mode == "death"
    assert 0.003 < died.mean() < 0.05
    assert died[stays.age_at_admission >= 75].mean() > died[stays.age_at_admission < 60].mean()
    assert set(stays.ward) >= {"médecine", "chirurgie", "obstétrique"}
    assert all(icd10_chapter(code) for code in stays.main_diagnosis.unique())
    assert icd10_chapter("E11.9") == "IV" and icd10_chapter("G122") == "VI"


def test_rare_diseases_give_small_counts_per_region(frames):
    stays = frames["hospital_stays"]
    for prefix in ("E84", "G12.2", "Q90"):
        patients = stays[stays.main_diagnosis.astype(str).str.startswith(prefix)].groupby(
            "region", observed=True).patient_id.nunique()
        assert patients.sum() > 0, prefix
        assert patients.max() < 10, prefix  # below the usual threshold of statistical disclosure


def test_claims_look_like_reimbursed_acts(frames):
    claims = frames["claims"]
    assert (claims.amount_reimbursed >= 0).all() and (claims.amount_reimbursed.round(2) == claims.amount_reimbursed).all()
    assert claims.prescriber_specialty.value_counts(normalize=True).idxmax() == "01"  # general practice
    assert {"G", "CS", "APC", "DEQP003"} <= set(claims.act_code)
    gp = claims[claims.act_code == "G"].amount_reimbursed
    assert 15 <= gp.median() <= 30
    women_only = claims[claims.prescriber_specialty.isin(["07", "21"]) | (claims.act_code == "JKHD001")]
    assert (women_only.sex == 2).all()
    assert (pd.to_datetime(claims.care_date).dt.dayofweek == 6).mean() < 0.03  # few acts on Sundays


def test_diabetics_have_higher_hba1c_more_tests_and_more_gp_visits(frames):
    stays, labs, claims = frames["hospital_stays"], frames["lab_results"], frames["claims"]
    diabetic = set(stays.patient_id[stays.main_diagnosis.astype(str).str.match(r"E1[0-4]")])
    assert len(diabetic) >= 10
    hba1c = labs[labs.test_code == "4548-4"]
    with_diabetes = hba1c.patient_id.isin(diabetic)
    # "others" include the diabetics never in hospital for their diabetes, who are tested often too
    assert hba1c.value[with_diabetes].median() > hba1c.value[~with_diabetes].median() + 0.2
    assert hba1c.value[with_diabetes].median() >= 6.5  # the diagnostic threshold
    tests = labs.patient_id.value_counts()
    assert tests[tests.index.isin(diabetic)].mean() > 1.3 * tests[~tests.index.isin(diabetic)].mean()
    gp = claims[claims.prescriber_specialty.isin(["01", "22", "23"])].patient_id.value_counts()
    assert gp[gp.index.isin(diabetic)].mean() > 1.5 * gp[~gp.index.isin(diabetic)].mean()
    assert set(labs.unit[labs.test_code == "4548-4"]) == {"%"}


def test_a_second_run_reuses_the_files_without_rewriting_them(generated):
    out = generated["claims"].directory.parent
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    again = generate_demo_datasets(out, scale=SCALE)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert again == generated


def test_another_scale_replaces_the_datasets(tmp_path: Path):
    small = generate_demo_datasets(tmp_path, scale=0.01)
    larger = generate_demo_datasets(tmp_path, scale=0.02)
    assert all(larger[slug].row_count > small[slug].row_count for slug in SLUGS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SLUGS)  # nothing left over
    assert pq.read_metadata(tmp_path / "claims" / "claims.parquet").num_rows == larger["claims"].row_count


def test_the_leftovers_of_a_crashed_run_are_removed_and_never_used(tmp_path: Path):
    crashed = tmp_path / ".claims.tmp-k2j4h1"  # as a killed run leaves it
    crashed.mkdir(parents=True)
    (crashed / "claims.parquet").write_bytes(b"half written")
    result = generate_demo_datasets(tmp_path, scale=0.01)
    assert not crashed.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SLUGS)
    assert pq.read_metadata(tmp_path / "claims" / "claims.parquet").num_rows == result["claims"].row_count


def test_a_failure_while_writing_leaves_no_half_written_dataset(tmp_path: Path, monkeypatch):
    write_files = demo_data._write_files

    def fail_on_stays(folder: Path, slug: str, table):
        if slug == "hospital_stays":
            (folder / "hospital_stays.parquet").write_bytes(b"half written")
            raise OSError("disk full")
        return write_files(folder, slug, table)

    monkeypatch.setattr(demo_data, "_write_files", fail_on_stays)
    with pytest.raises(OSError, match="disk full"):
        generate_demo_datasets(tmp_path, scale=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["claims"]  # complete, with its marker
    monkeypatch.setattr(demo_data, "_write_files", write_files)
    claims_before = (tmp_path / "claims" / "claims.parquet").stat().st_mtime_ns
    result = generate_demo_datasets(tmp_path, scale=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SLUGS)
    assert (tmp_path / "claims" / "claims.parquet").stat().st_mtime_ns == claims_before  # reused
    assert result["hospital_stays"].files == generate_demo_datasets(tmp_path / "fresh", scale=0.01)["hospital_stays"].files


def test_a_tampered_file_is_regenerated(tmp_path: Path):
    first = generate_demo_datasets(tmp_path, scale=0.01)
    (tmp_path / "lab_results" / "lab_results.csv").write_text("patient_id\nsomeone\n")
    assert generate_demo_datasets(tmp_path, scale=0.01) == first
    assert sha256(tmp_path / "lab_results" / "lab_results.csv") == first["lab_results"].files["lab_results.csv"]


def test_a_folder_the_generator_did_not_make_is_left_alone(tmp_path: Path):
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "claims.parquet").write_bytes(b"somebody's real data")
    with pytest.raises(FileExistsError, match="not made by the demo data generator"):
        generate_demo_datasets(tmp_path, scale=0.01)
    assert (tmp_path / "claims" / "claims.parquet").read_bytes() == b"somebody's real data"


def test_folders_of_the_first_version_of_the_generator_are_replaced(tmp_path: Path):
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / ".generated.json").write_text("{}")
    (tmp_path / "claims" / "claims.parquet").write_bytes(b"old demo data")
    result = generate_demo_datasets(tmp_path, scale=0.01)
    assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == [".demo-data.json", *sorted(result["claims"].files)]


@pytest.mark.parametrize("scale", [0, -1, math.nan, math.inf, 1_000, "1", True])
def test_an_impossible_scale_is_refused(tmp_path: Path, scale):
    with pytest.raises(ValueError, match="scale must be"):
        generate_demo_datasets(tmp_path, scale=scale)


def test_scale_one_gives_the_sizes_the_demo_promises(tmp_path: Path):
    # About 2 s on 2 cores (the benchmarks, not this test, keep the time).
    result = generate_demo_datasets(tmp_path, scale=1.0)
    for slug in SLUGS:
        assert result[slug].row_count == pytest.approx(EXPECTED_ROWS[slug], rel=0.05)
    patients = pq.read_table(tmp_path / "claims" / "claims.parquet", columns=["patient_id"]).column(0)
    assert 23_000 < len(set(patients.to_pylist())) <= 25_000
    assert os.path.getsize(tmp_path / "claims" / "claims.parquet") < 5_000_000
