"""Synthetic demo datasets shaped like the French national health data (SNDS), made here.

One synthetic population is shared by three datasets so they join on ``patient_id``:
``claims`` (DCIR-like outpatient acts), ``hospital_stays`` (PMSI MCO-like stays) and
``lab_results`` (biology with LOINC codes). Distributions follow public orders of magnitude
(French age pyramid, regional populations, diagnoses and care rising with age, rare diseases that
give small counts), so disclosure checks meet the same small cells real outputs do. No real person
is described. The same seed and scale give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DEMO_SEED = 20261123
GENERATOR_VERSION = 1
MARKER = ".generated.json"
PERIOD_START = np.datetime64("2023-01-01")
PERIOD_DAYS = 731  # 2023 and 2024

# (age band start, share of the population), France 2024, rounded
AGE_BANDS = [(0, 5.3), (5, 5.8), (10, 6.2), (15, 6.1), (20, 5.6), (25, 5.5), (30, 6.0), (35, 6.3),
             (40, 6.4), (45, 6.4), (50, 6.8), (55, 6.6), (60, 6.3), (65, 5.8), (70, 5.5), (75, 4.1),
             (80, 3.0), (85, 2.1), (90, 1.2)]
# INSEE region codes and population shares (%), metropolitan and overseas
REGIONS = {"11": 18.3, "84": 12.0, "75": 9.0, "76": 8.9, "32": 8.9, "44": 8.2, "93": 7.6, "52": 5.7,
           "53": 5.1, "28": 4.9, "27": 4.1, "24": 3.8, "94": 0.5, "04": 1.3, "01": 0.6, "02": 0.5,
           "03": 0.4, "06": 0.4}
# prescriber speciality (SNDS PSE_SPE_COD-like): share of acts, acts with base fee in euros
SPECIALTIES = {
    "01": (55.0, [("G", 30.00), ("G", 30.00), ("G", 30.00), ("VG", 40.00), ("APC", 55.00)]),  # general practice
    "03": (5.0, [("CSC", 47.73), ("DEQP003", 14.26), ("APC", 55.00)]),  # cardiology
    "05": (4.0, [("CS", 30.00), ("QZFA036", 62.70)]),  # dermatology
    "07": (5.0, [("CS", 30.00), ("JKHD001", 14.00)]),  # gynaecology
    "08": (2.0, [("CS", 30.00), ("HHQE005", 96.14)]),  # gastroenterology
    "12": (6.0, [("CS", 30.00), ("COE", 60.00)]),  # paediatrics
    "13": (2.0, [("CS", 30.00), ("GLQP012", 40.28)]),  # pneumology
    "15": (7.0, [("CS", 30.00), ("BGQP002", 28.34)]),  # ophthalmology
    "33": (3.0, [("CNPSY", 51.70)]),  # psychiatry
    "42": (2.0, [("CS", 30.00), ("APC", 55.00)]),  # endocrinology
}
# main diagnoses (ICD-10): code, ward, base weight; group decides who gets them
DIAGNOSES = {
    "general": [("J18.9", "medecine", 6), ("N39.0", "medecine", 4), ("K80.2", "chirurgie", 4),
                ("K35.8", "chirurgie", 3), ("S72.0", "chirurgie", 3), ("C34.9", "medecine", 2),
                ("Z51.1", "ambulatoire", 6), ("H25.9", "ambulatoire", 5), ("M17.1", "chirurgie", 3),
                ("R07.4", "medecine", 3), ("J44.1", "medecine", 2), ("A09.9", "medecine", 2)],
    "cardio": [("I21.4", "medecine", 4), ("I50.0", "medecine", 5), ("I48.9", "medecine", 4),
               ("I63.9", "medecine", 3), ("I25.1", "ambulatoire", 3), ("I10", "medecine", 1)],
    "diabetes": [("E11.9", "medecine", 3), ("E11.5", "chirurgie", 1), ("E11.2", "medecine", 1),
                 ("E10.1", "medecine", 1)],
    "women": [("C50.9", "chirurgie", 2), ("N81.1", "chirurgie", 1)],
    "obstetric": [("O80", "obstetrique", 10), ("O82", "obstetrique", 2), ("O47.0", "obstetrique", 1)],
    "rare": [("E84.0", "medecine", 1), ("G12.2", "medecine", 1), ("Q90.9", "medecine", 1)],
}
# LOINC test: label, unit, decimals
LAB_TESTS = {
    "4548-4": ("Hemoglobin A1c", "%", 1),
    "1558-6": ("Fasting glucose", "mmol/L", 1),
    "13457-7": ("LDL cholesterol", "g/L", 2),
    "14682-9": ("Creatinine", "umol/L", 0),
    "62238-1": ("eGFR (CKD-EPI)", "mL/min/1.73m2", 0),
}


@dataclass(frozen=True)
class GeneratedDataset:
    slug: str
    directory: Path
    files: dict[str, str]  # file name -> sha256
    row_count: int


def _weights(values: dict | list) -> np.ndarray:
    w = np.asarray(list(values.values()) if isinstance(values, dict) else values, dtype=float)
    return w / w.sum()


def _hex_ids(rng: np.random.Generator, count: int, length: int) -> np.ndarray:
    raw = rng.integers(0, 2**63, size=(count, 2), dtype=np.int64)
    return np.array([hashlib.sha256(r.tobytes()).hexdigest()[:length].upper() for r in raw])


def _population(rng: np.random.Generator, size: int) -> pd.DataFrame:
    bands = np.array([b for b, _ in AGE_BANDS])
    band = rng.choice(len(bands), size=size, p=_weights([s for _, s in AGE_BANDS]))
    age = np.minimum(bands[band] + rng.integers(0, 5, size=size) + np.where(bands[band] == 90, rng.integers(0, 10, size), 0), 105)
    sex = np.where(rng.random(size) < 0.516, 2, 1)
    region = rng.choice(list(REGIONS), size=size, p=_weights(REGIONS))
    # chronic conditions rise with age (type 2 diabetes ~6 %, cardiovascular disease ~8 % overall)
    diabetes = rng.random(size) < 0.005 + 0.20 / (1 + np.exp(-(age - 62) / 9))
    cardio = rng.random(size) < 0.004 + 0.32 / (1 + np.exp(-(age - 72) / 8)) * np.where(sex == 1, 1.25, 0.8)
    rare = rng.random(size) < 0.0015
    return pd.DataFrame({
        "patient_id": _hex_ids(rng, size, 17), "sex": sex, "age": age, "birth_year": 2024 - age,
        "region": region, "diabetes": diabetes, "cardio": cardio, "rare": rare,
    })


def _dates(rng: np.random.Generator, size: int) -> np.ndarray:
    days = rng.integers(0, PERIOD_DAYS, size=size)
    dates = PERIOD_START + days.astype("timedelta64[D]")
    # little care on Sundays: most move to the Monday
    sunday = (dates.astype("datetime64[D]").view("int64") - 3) % 7 == 0
    move = sunday & (rng.random(size) < 0.9)
    return np.where(move, dates + np.timedelta64(1, "D"), dates)


def _claims(rng: np.random.Generator, people: pd.DataFrame, rows: int) -> pd.DataFrame:
    weight = (1 + people.age / 25) * (1 + 1.5 * people.diabetes + 1.0 * people.cardio)
    who = people.iloc[rng.choice(len(people), size=rows, p=_weights(weight.to_numpy()))].reset_index(drop=True)
    specialty_codes = np.array(list(SPECIALTIES))
    base = np.tile(_weights([w for w, _ in SPECIALTIES.values()]), (rows, 1))
    column = {code: i for i, code in enumerate(specialty_codes)}
    base[:, column["03"]] *= np.where(who.cardio, 6, 1)
    base[:, column["42"]] *= np.where(who.diabetes, 8, 1)
    base[:, column["12"]] *= np.where(who.age < 16, 8, 0.02)
    base[:, column["07"]] *= np.where((who.sex == 2) & (who.age >= 15), 2, 0)
    base /= base.sum(axis=1, keepdims=True)
    pick = (base.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)
    specialty = specialty_codes[pick]
    act = np.empty(rows, dtype=object)
    fee = np.empty(rows)
    for code, (_, acts) in SPECIALTIES.items():
        mask = specialty == code
        choice = rng.integers(0, len(acts), size=mask.sum())
        act[mask] = np.array([a for a, _ in acts])[choice]
        fee[mask] = np.array([f for _, f in acts])[choice]
    # 70 % reimbursed, 100 % for long-term conditions (ALD), less the 2 euro flat contribution
    rate = np.where(who.diabetes | who.cardio, 1.0, 0.7)
    amount = np.maximum(np.round(fee * rate - np.where(who.age >= 18, 2.0, 0.0), 2), 0.0)
    table = pd.DataFrame({
        "patient_id": who.patient_id, "sex": who.sex.astype("int8"), "birth_year": who.birth_year.astype("int16"),
        "region": who.region, "care_date": _dates(rng, rows).astype("datetime64[D]"), "act_code": act.astype(str),
        "prescriber_specialty": specialty, "amount_reimbursed": amount,
    })
    return table.sort_values(["care_date", "patient_id"], kind="stable").reset_index(drop=True)


def _pick_diagnoses(rng: np.random.Generator, who: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    rows = len(who)
    catalogue = [(group, code, ward, w) for group, items in DIAGNOSES.items() for code, ward, w in items]
    weights = np.array([w for *_, w in catalogue], dtype=float)[None, :].repeat(rows, axis=0)
    groups = np.array([g for g, *_ in catalogue])
    age, women = who.age.to_numpy()[:, None], (who.sex == 2).to_numpy()[:, None]
    weights[:, groups == "cardio"] *= np.where(who.cardio.to_numpy()[:, None], 4.0, 0.05)
    weights[:, groups == "diabetes"] *= np.where(who.diabetes.to_numpy()[:, None], 5.0, 0.0)
    weights[:, groups == "women"] *= np.where(women, 1.0, 0.0)
    weights[:, groups == "obstetric"] *= np.where(women & (age >= 18) & (age <= 45), 1.0, 0.0)
    weights[:, groups == "rare"] *= np.where(who.rare.to_numpy()[:, None], 20.0, 0.0)
    codes = np.array([c for _, c, _, _ in catalogue])
    # appendicitis is for the young, hip fractures and cataracts for the old
    weights[:, codes == "K35.8"] *= np.where(age < 40, 3.0, 0.3)
    weights[:, (codes == "S72.0") | (codes == "H25.9")] *= np.where(age >= 70, 4.0, 0.1)
    weights /= weights.sum(axis=1, keepdims=True)
    pick = (weights.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)
    return codes[pick], np.array([ward for _, _, ward, _ in catalogue])[pick]


def _hospital_stays(rng: np.random.Generator, people: pd.DataFrame, rows: int) -> pd.DataFrame:
    weight = np.exp(people.age / 25) * (1 + 2.0 * people.cardio + 1.0 * people.diabetes + 10 * people.rare)
    weight += np.where((people.sex == 2) & people.age.between(18, 45), 1.5, 0)  # births
    who = people.iloc[rng.choice(len(people), size=rows, p=_weights(weight.to_numpy()))].reset_index(drop=True)
    diagnosis, ward = _pick_diagnoses(rng, who)
    mean_los = np.where(ward == "ambulatoire", 0, np.where(ward == "obstetrique", 3.5, 3 + who.age / 15))
    los = np.where(ward == "ambulatoire", 0, rng.poisson(mean_los) + (ward != "ambulatoire"))
    admission = _dates(rng, rows)
    admission = np.minimum(admission, np.datetime64("2024-12-31") - los.astype("timedelta64[D]"))
    death_risk = 0.0002 * np.exp(who.age.to_numpy() / 16) * np.where(np.isin(diagnosis, ["I21.4", "I50.0", "C34.9", "G12.2", "I63.9"]), 3, 1)
    u = rng.random(rows)
    mode = np.where(ward == "ambulatoire", "domicile",
                    np.where(u < np.minimum(death_risk, 0.3), "deces",
                             np.where(u < np.minimum(death_risk, 0.3) + 0.08, "mutation", "domicile")))
    stays = pd.DataFrame({
        "stay_id": _hex_ids(rng, rows, 12), "patient_id": who.patient_id, "sex": who.sex.astype("int8"),
        "age_at_admission": (who.age - (admission < np.datetime64("2024-01-01")).astype(int)).clip(lower=0).astype("int16"),
        "admission_date": admission.astype("datetime64[D]"),
        "discharge_date": (admission + los.astype("timedelta64[D]")).astype("datetime64[D]"),
        "length_of_stay": los.astype("int16"), "main_diagnosis": diagnosis, "ward": ward,
        "discharge_mode": mode, "region": who.region,
    })
    return stays.sort_values(["admission_date", "stay_id"], kind="stable").reset_index(drop=True)


def _lab_results(rng: np.random.Generator, people: pd.DataFrame, rows: int) -> pd.DataFrame:
    weight = (people.age >= 18) * (1 + people.age / 30) * (1 + 6.0 * people.diabetes + 1.5 * people.cardio)
    who = people.iloc[rng.choice(len(people), size=rows, p=_weights(weight.to_numpy()))].reset_index(drop=True)
    codes = np.array(list(LAB_TESTS))
    base = np.array([0.15, 0.25, 0.25, 0.25, 0.10])[None, :].repeat(rows, axis=0)
    base[:, 0] *= np.where(who.diabetes, 6.0, 0.6)  # HbA1c follows diabetics every three months
    base /= base.sum(axis=1, keepdims=True)
    test = codes[(base.cumsum(axis=1) > rng.random((rows, 1))).argmax(axis=1)]
    diabetic, male, age = who.diabetes.to_numpy(), (who.sex == 1).to_numpy(), who.age.to_numpy()
    value = np.select(
        [test == "4548-4", test == "1558-6", test == "13457-7", test == "14682-9"],
        [np.where(diabetic, rng.normal(7.3, 1.1, rows), rng.normal(5.4, 0.35, rows)).clip(4.0, 14.0),
         np.where(diabetic, rng.normal(8.5, 2.2, rows), rng.normal(5.0, 0.5, rows)).clip(3.0, 25.0),
         rng.normal(1.30, 0.35, rows).clip(0.3, 3.5),
         (np.where(male, rng.normal(85, 15, rows), rng.normal(68, 12, rows)) * (1 + np.maximum(age - 60, 0) / 80)).clip(30, 600)],
        default=(125 - 0.8 * np.maximum(age - 30, 0) + rng.normal(0, 12, rows)).clip(8, 140),
    )
    order = np.argsort(codes)
    decimals = np.array([LAB_TESTS[t][2] for t in codes])[order][np.searchsorted(codes[order], test)]
    value = np.select([decimals == 0, decimals == 1], [np.round(value, 0), np.round(value, 1)], np.round(value, 2))
    labels = {code: label for code, (label, _, _) in LAB_TESTS.items()}
    units = {code: unit for code, (_, unit, _) in LAB_TESTS.items()}
    table = pd.DataFrame({
        "patient_id": who.patient_id, "result_date": _dates(rng, rows).astype("datetime64[D]"), "test_code": test,
        "test_label": pd.Series(test).map(labels), "value": value, "unit": pd.Series(test).map(units),
    })
    return table.sort_values(["result_date", "patient_id", "test_code"], kind="stable").reset_index(drop=True)


def _write(table: pd.DataFrame, slug: str, folder: Path) -> None:
    # dates as calendar dates (date32), not timestamps; no pandas index in the files
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.cast(pa.schema([
        pa.field(f.name, pa.date32()) if pa.types.is_timestamp(f.type) else f for f in arrow.schema
    ]))
    pq.write_table(arrow, folder / f"{slug}.parquet", compression="zstd")
    table.to_csv(folder / f"{slug}.csv", index=False, date_format="%Y-%m-%d", lineterminator="\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _existing(folder: Path, marker: dict) -> GeneratedDataset | None:
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if {k: found.get(k) for k in marker} != marker:
        return None
    return GeneratedDataset(folder.name, folder, found["files"], found["rows"])


def generate_demo_datasets(out_dir: Path, *, seed: int = DEMO_SEED, scale: float = 1.0) -> dict[str, GeneratedDataset]:
    """Write claims, hospital_stays and lab_results under ``out_dir/<slug>/`` (Parquet and CSV).

    A dataset already generated with the same seed, scale and generator version is reused as is.
    Each dataset is written in a hidden folder first and renamed into place, so a crash never
    leaves a half-written dataset behind.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in out_dir.glob(".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    marker = {"seed": seed, "scale": scale, "version": GENERATOR_VERSION}
    slugs = ("claims", "hospital_stays", "lab_results")
    reused = {slug: _existing(out_dir / slug, marker) for slug in slugs}
    if all(reused.values()):
        return reused  # type: ignore[return-value]
    rng = np.random.default_rng(seed)
    people = _population(rng, max(int(25_000 * scale), 200))
    makers = {
        "claims": lambda: _claims(np.random.default_rng([seed, 1]), people, int(200_000 * scale)),
        "hospital_stays": lambda: _hospital_stays(np.random.default_rng([seed, 2]), people, int(30_000 * scale)),
        "lab_results": lambda: _lab_results(np.random.default_rng([seed, 3]), people, int(80_000 * scale)),
    }
    result = {}
    for slug in slugs:
        if reused[slug]:
            result[slug] = reused[slug]
            continue
        table = makers[slug]()
        staging = out_dir / f".tmp-{slug}-{os.getpid()}"
        staging.mkdir()
        _write(table, slug, staging)
        files = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
        (staging / MARKER).write_text(json.dumps({**marker, "files": files, "rows": len(table)}, indent=1))
        target = out_dir / slug
        if target.exists():
            retired = out_dir / f".tmp-old-{slug}-{os.getpid()}"
            target.rename(retired)
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
        result[slug] = GeneratedDataset(slug, target, files, len(table))
    return result
