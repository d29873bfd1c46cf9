"""A synthetic population shaped like the French national health data (SNDS), in partitioned Parquet.

No real person appears and nothing is downloaded. From one seed and a number of claims rows it
writes five datasets under the data root, joined by the pseudonym ``patient_id`` (standing for
DCIR's ``BEN_NIR_PSA`` and PMSI's ``NIR_ANO_17``):

- ``beneficiaries``: the referential (birth year, sex, commune, region, date of death);
- ``claims``: DCIR-like reimbursed care, one row per dispensing (ATC code) or act (NGAP/CCAM
  code), ``claims/year=YYYY/month=MM/part-N.parquet``;
- ``hospital_stays``: PMSI MCO-like acute stays (ICD-10 main diagnosis, GHM, length of stay,
  FINESS), ``hospital_stays/year=YYYY/part-N.parquet``, with early readmissions;
- ``referentials``: the ``atc`` and ``icd10_chapters`` code tables;
- ``cohort``: an external cohort keyed by its own ``study_id``, and the ``linkage`` table its
  producer would supply (study id to pseudonym; about 5 % of the cohort not found).

The same people appear in every table; care and stays skew to the old and the frail; codes run
from very frequent (paracetamol, GP visits) to rare (orphan drugs), a few tariffs dominate the
amounts, and overseas regions are small. Each month is drawn from its own seed, so a partition's
bytes do not depend on how many were written before. Everything is numpy/pyarrow vectorised.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20261204
GENERATOR_VERSION = 2
DEMO_ROWS = 200_000
YEARS = (2022, 2023)
SLUGS = ("beneficiaries", "claims", "hospital_stays", "referentials", "cohort")
MARKER = ".demo-snds.json"  # beside the datasets, not in them: a dataset holds Parquet only
CLAIMS_PER_PERSON_YEAR = 18.0  # about 1.2 billion claims for 67 million people
STAYS_PER_PERSON_YEAR = 0.16  # about 11 million stays
BYTES_PER_CLAIM = 24  # compressed, measured; the disk check adds room for stays and the rest

# INSEE department -> (region code, population weight); overseas and Corsica small on purpose
DEPARTMENTS = {
    "75": ("11", 2.1), "92": ("11", 1.6), "93": ("11", 1.6), "69": ("84", 1.9), "38": ("84", 1.3),
    "13": ("93", 2.0), "06": ("93", 1.1), "59": ("32", 2.6), "62": ("32", 1.5), "33": ("75", 1.6),
    "31": ("76", 1.4), "34": ("76", 1.2), "44": ("52", 1.4), "35": ("53", 1.1), "67": ("44", 1.1),
    "21": ("27", 0.5), "45": ("24", 0.7), "76": ("28", 1.2), "63": ("84", 0.7), "2A": ("94", 0.16),
    "2B": ("94", 0.18), "971": ("01", 0.38), "972": ("02", 0.36), "973": ("03", 0.29),
    "974": ("04", 0.86), "976": ("06", 0.3),
}
# ATC code, label, share of dispensings (Zipf-like), unit price in euros
DRUGS = [
    ("N02BE01", "paracetamol", 30, 2.2), ("C10AA05", "atorvastatin", 6, 9.8), ("C10AA07", "rosuvastatin", 5, 10.5),
    ("C10AA01", "simvastatin", 2, 6.1), ("A10BA02", "metformin", 6, 4.3), ("C09AA05", "ramipril", 4, 5.2),
    ("C07AB07", "bisoprolol", 4, 4.9), ("B01AC06", "acetylsalicylic acid", 5, 2.9), ("A02BC01", "omeprazole", 6, 5.6),
    ("J01CA04", "amoxicillin", 7, 3.4), ("N06AB04", "citalopram", 2, 6.7), ("R03AC02", "salbutamol", 3, 4.6),
    ("H03AA01", "levothyroxine", 5, 2.5), ("M01AE01", "ibuprofen", 5, 2.1), ("N05BA12", "alprazolam", 2, 2.0),
    ("C08CA01", "amlodipine", 4, 4.0), ("A10AE04", "insulin glargine", 1.2, 52.0), ("B01AF01", "rivaroxaban", 1.5, 65.0),
    ("C03CA01", "furosemide", 1.5, 2.7), ("L04AX03", "methotrexate", 0.3, 12.0), ("L01EA01", "imatinib", 0.02, 980.0),
    ("A16AX07", "sapropterin", 0.003, 1450.0), ("C10BA02", "simvastatin and ezetimibe", 0.6, 28.0),
]
# NGAP/CCAM act, share, tariff (the few dominant amounts), performing specialty
ACTS = [("G", 45, 26.5, "01"), ("GS", 10, 30.0, "01"), ("APC", 3, 55.0, "03"), ("CS", 6, 30.0, "07"),
        ("AMI", 12, 3.15, "24"), ("AMK", 8, 2.15, "26"), ("B", 10, 0.27, "38"), ("DEQP003", 2, 14.4, "03"),
        ("YYYY600", 0.5, 69.0, "06"), ("HBQK389", 3, 21.0, "19")]
PRESCRIBERS = (["01"] * 70) + ["03", "07", "09", "11", "12", "13", "14", "15", "02", "06"] * 3
# ICD-10 main diagnosis, share of stays, GHM root, mean length of stay (days)
DIAGNOSES = [
    ("I50.9", 5, "05M09", 8), ("I21.4", 3, "05M04", 6), ("I63.9", 3, "01M30", 9), ("J18.9", 5, "04M05", 7),
    ("J44.1", 3, "04M20", 8), ("K80.2", 4, "07C14", 2), ("K35.8", 3, "06C09", 3), ("S72.0", 3, "08C47", 10),
    ("O80.0", 6, "14Z14", 4), ("C34.9", 2, "04M08", 6), ("C50.9", 2, "09C05", 3), ("N39.0", 4, "11M04", 5),
    ("E11.9", 2, "10M02", 5), ("R07.4", 6, "05M15", 1), ("Z51.1", 10, "28Z07", 0), ("H25.9", 8, "02C05", 0),
    ("F10.2", 2, "20Z04", 6), ("A41.9", 1.5, "18M10", 12), ("E84.0", 0.02, "04M13", 9), ("G12.2", 0.01, "01M17", 10),
]
ICD10_CHAPTERS = [
    ("I", "A00-B99", "Certain infectious and parasitic diseases"), ("II", "C00-D48", "Neoplasms"),
    ("III", "D50-D89", "Diseases of the blood and immune mechanism"), ("IV", "E00-E90", "Endocrine, nutritional and metabolic diseases"),
    ("V", "F00-F99", "Mental and behavioural disorders"), ("VI", "G00-G99", "Diseases of the nervous system"),
    ("VII", "H00-H59", "Diseases of the eye and adnexa"), ("VIII", "H60-H95", "Diseases of the ear and mastoid process"),
    ("IX", "I00-I99", "Diseases of the circulatory system"), ("X", "J00-J99", "Diseases of the respiratory system"),
    ("XI", "K00-K93", "Diseases of the digestive system"), ("XII", "L00-L99", "Diseases of the skin"),
    ("XIII", "M00-M99", "Diseases of the musculoskeletal system"), ("XIV", "N00-N99", "Diseases of the genitourinary system"),
    ("XV", "O00-O99", "Pregnancy, childbirth and the puerperium"), ("XVI", "P00-P96", "Conditions of the perinatal period"),
    ("XVII", "Q00-Q99", "Congenital malformations"), ("XVIII", "R00-R99", "Symptoms and abnormal findings"),
    ("XIX", "S00-T98", "Injury and poisoning"), ("XX", "V01-Y98", "External causes"),
    ("XXI", "Z00-Z99", "Factors influencing health status"), ("XXII", "U00-U99", "Codes for special purposes"),
]
HOSPITALS_PER_REGION = 4
START = np.datetime64(f"{YEARS[0]}-01-01", "D")
DAYS = int((np.datetime64(f"{YEARS[-1] + 1}-01-01", "D") - START).astype(np.int64))


class GeneratorError(ValueError):
    """Asked for what cannot be written; the message says what to ask instead."""


@dataclass(frozen=True)
class Generated:
    slug: str
    directory: Path
    row_count: int
    files: int


def people_for(rows: int) -> int:
    return max(200, round(rows / (CLAIMS_PER_PERSON_YEAR * len(YEARS))))


def needed_bytes(rows: int) -> int:
    return int(rows * BYTES_PER_CLAIM * 1.3) + people_for(rows) * 40 + (8 << 20)


def check_room(out_dir: Path, rows: int) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    free, needed = shutil.disk_usage(out_dir).free, needed_bytes(rows)
    if needed > free * 0.95:
        fits = int(free * 0.95 / needed * rows)
        raise GeneratorError(f"{rows:,} claims rows need about {needed / 1e9:.1f} GB but {out_dir} has "
                             f"{free / 1e9:.1f} GB free; ask for at most {fits:,} rows or free some space. "
                             "Nothing was written.")


def generate(out_dir: Path, *, rows: int = DEMO_ROWS, seed: int = SEED, rows_per_file: int = 1_000_000,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Generated]:
    """Write the five datasets under ``out_dir`` (each appears whole: written beside, then
    renamed); reuse them when the same rows and seed were written before."""
    if rows < 1000:
        raise GeneratorError(f"--rows {rows:,}: ask for at least 1,000 claims rows.")
    marker = out_dir / MARKER
    wanted = {"rows": rows, "seed": seed, "rows_per_file": rows_per_file, "version": GENERATOR_VERSION}
    if marker.exists() and all((out_dir / s).is_dir() for s in SLUGS):
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return {s: Generated(s, out_dir / s, *done["datasets"][s]) for s in SLUGS}
    check_room(out_dir, rows)
    staging = out_dir / f".snds-staging-{seed}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    people = _beneficiaries(np.random.default_rng([seed, 0]), people_for(rows))
    counts = {"beneficiaries": _write(staging / "beneficiaries", people.table, rows_per_file)}
    counts["claims"] = _claims(staging / "claims", people, rows, seed, rows_per_file, progress)
    counts["hospital_stays"] = _stays(staging / "hospital_stays", people, seed, rows_per_file)
    counts["referentials"] = _referentials(staging / "referentials")
    counts["cohort"] = _cohort(staging / "cohort", people, seed)
    for slug in SLUGS:
        shutil.rmtree(out_dir / slug, ignore_errors=True)
        (staging / slug).rename(out_dir / slug)
    staging.rmdir()
    marker.write_text(json.dumps({**wanted, "datasets": {s: list(c) for s, c in counts.items()}}))
    return {s: Generated(s, out_dir / s, *counts[s]) for s in SLUGS}


@dataclass
class _People:
    table: pa.Table
    ids: np.ndarray  # patient_id strings
    weight: np.ndarray  # share of care, skewed to the old and the frail
    region: np.ndarray
    death_day: np.ndarray  # days from START; a large number when alive


def _hex_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    nibbles = rng.integers(0, 16, size=(n, 16), dtype=np.uint8)
    return np.frombuffer(np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles].tobytes(), "S16").astype("U16")


def _beneficiaries(rng: np.random.Generator, n: int) -> _People:
    ages = np.minimum(rng.gamma(2.2, 19.0, n), 104).astype(np.int32)
    sex = np.where(rng.random(n) < 0.516, 2, 1).astype(np.int8)
    departments = list(DEPARTMENTS)
    dept_weights = np.array([DEPARTMENTS[d][1] for d in departments])
    dept = rng.choice(len(departments), n, p=dept_weights / dept_weights.sum())
    region = np.array([DEPARTMENTS[d][0] for d in departments])[dept]
    commune = np.char.add(np.array(departments)[dept], np.char.zfill(rng.integers(1, 600, n).astype("U3"), 3))
    frailty = rng.lognormal(0.0, 1.0, n) * (1 + (ages / 40.0) ** 2)
    death_risk = 0.00003 * np.exp(0.09 * ages) * len(YEARS)  # about 4 % a year at 80
    dies = rng.random(n) < np.minimum(death_risk, 0.9)
    death_day = np.where(dies, rng.integers(0, DAYS, n), 1 << 30)
    ids = _hex_ids(rng, n)
    death = pa.array(np.where(dies, START + death_day.astype("timedelta64[D]"), np.datetime64("NaT")), pa.date32())
    table = pa.table({"patient_id": pa.array(ids), "birth_year": pa.array(YEARS[0] - ages, pa.int16()),
                      "sex": pa.array(sex), "commune": pa.array(commune), "region": pa.array(region).dictionary_encode(),
                      "death_date": death})
    return _People(table, ids, frailty / frailty.sum(), region, death_day)


def _claims(folder: Path, people: _People, rows: int, seed: int, rows_per_file: int, progress) -> tuple[int, int]:
    drug_share = np.array([d[2] for d in DRUGS], float)
    act_share = np.array([a[1] for a in ACTS], float)
    cumulative = np.cumsum(people.weight)
    written = files = 0
    months = [(y, m) for y in YEARS for m in range(1, 13)]
    for index, (y, m) in enumerate(months):
        rng = np.random.default_rng([seed, 1, y, m])
        n = rows // len(months) + (1 if index < rows % len(months) else 0)
        month = np.datetime64(f"{y}-{m:02d}", "M")
        first = int((month.astype("datetime64[D]") - START).astype(np.int64))
        length = int(((month + 1).astype("datetime64[D]") - month.astype("datetime64[D]")).astype(np.int64))
        person = np.minimum(np.searchsorted(cumulative, rng.random(n) * cumulative[-1]), len(cumulative) - 1)
        day = first + rng.integers(0, length, n)
        for _ in range(20):  # nobody has care after death: give those rows to someone else
            dead = np.flatnonzero(day > people.death_day[person])
            if not len(dead):
                break
            person[dead] = np.minimum(np.searchsorted(cumulative, rng.random(len(dead)) * cumulative[-1]),
                                      len(cumulative) - 1)
        alive = day <= people.death_day[person]
        person, day = person[alive], day[alive]
        k = len(person)
        is_drug = rng.random(k) < 0.62
        drug = rng.choice(len(DRUGS), k, p=drug_share / drug_share.sum())
        act = rng.choice(len(ACTS), k, p=act_share / act_share.sum())
        boxes = rng.choice([1, 1, 1, 2, 3], k)
        paid = np.where(is_drug, np.array([d[3] for d in DRUGS])[drug] * boxes, np.array([a[2] for a in ACTS])[act]
                        * np.where(np.isin(act, [4, 5, 6]), rng.choice([4, 8, 12, 30], k), 1))
        rate = np.where(rng.random(k) < 0.12, 1.0, np.where(is_drug, 0.65, 0.7))
        prescriber = np.array(PRESCRIBERS)[rng.integers(0, len(PRESCRIBERS), k)]
        table = pa.table({
            "patient_id": pa.array(people.ids[person]),
            "care_date": pa.array(START + day.astype("timedelta64[D]"), pa.date32()),
            "atc_code": pa.array(np.array([d[0] for d in DRUGS])[drug], mask=~is_drug),
            "act_code": pa.array(np.array([a[0] for a in ACTS])[act], mask=is_drug),
            "prescriber_specialty": pa.array(prescriber).dictionary_encode(),
            "amount_paid": pa.array(np.round(paid, 2)),
            "amount_reimbursed": pa.array(np.round(paid * rate, 2)),
            "region": pa.array(people.region[person]).dictionary_encode(),
        }).sort_by([("care_date", "ascending")])
        written_files = _write(folder / f"year={y}" / f"month={m:02d}", table, rows_per_file)
        written += written_files[0]
        files += written_files[1]
        if progress:
            progress(rows, n)
    return written, files


def _stays(folder: Path, people: _People, seed: int, rows_per_file: int) -> tuple[int, int]:
    rng = np.random.default_rng([seed, 2])
    n = max(50, round(len(people.ids) * STAYS_PER_PERSON_YEAR * len(YEARS)))
    share = np.array([d[1] for d in DIAGNOSES], float)
    person = rng.choice(len(people.ids), n, p=people.weight)
    admission = rng.integers(0, DAYS, n)
    dx = rng.choice(len(DIAGNOSES), n, p=share / share.sum())
    los = rng.poisson(np.array([d[3] for d in DIAGNOSES])[dx])
    # early readmissions: about one stay in eight is followed by another of the same person
    again = rng.random(n) < 0.12
    follow = admission[again] + los[again] + rng.integers(1, 31, again.sum())
    person = np.concatenate([person, person[again]])
    admission = np.concatenate([admission, follow])
    dx = np.concatenate([dx, np.where(rng.random(again.sum()) < 0.6, dx[again], rng.choice(len(DIAGNOSES), again.sum(), p=share / share.sum()))])
    los = np.concatenate([los, rng.poisson(np.array([d[3] for d in DIAGNOSES])[dx[n:]])])
    keep = (admission < DAYS) & (admission <= people.death_day[person])
    person, admission, dx, los = person[keep], admission[keep], dx[keep], los[keep]
    los = np.minimum(los, np.maximum(people.death_day[person] - admission, 0))
    regions = sorted(set(r for r, _ in DEPARTMENTS.values()))
    region_index = np.searchsorted(np.array(regions), people.region[person])
    hospital = np.char.add(np.char.add(np.array(regions)[region_index], "0"),
                           np.char.zfill((region_index * HOSPITALS_PER_REGION + rng.integers(0, HOSPITALS_PER_REGION, len(person))).astype("U6"), 6))
    severity = rng.choice(np.array(["1", "1", "1", "2", "2", "3", "4"]), len(person))
    ghm = np.char.add(np.array([d[2] for d in DIAGNOSES])[dx], np.where(los == 0, "J", severity))
    year = (START + admission.astype("timedelta64[D]")).astype("datetime64[Y]").astype(int) + 1970
    order = np.lexsort((admission, year))
    stay_id = _hex_ids(np.random.default_rng([seed, 3]), len(person))
    table = pa.table({
        "stay_id": pa.array(stay_id[order]), "patient_id": pa.array(people.ids[person][order]),
        "admission_date": pa.array(START + admission[order].astype("timedelta64[D]"), pa.date32()),
        "discharge_date": pa.array(START + (admission + los)[order].astype("timedelta64[D]"), pa.date32()),
        "length_of_stay": pa.array(los[order].astype(np.int32)),
        "main_diagnosis": pa.array(np.array([d[0] for d in DIAGNOSES])[dx][order]).dictionary_encode(),
        "ghm": pa.array(ghm[order]), "hospital_finess": pa.array(hospital[order]),
        "discharge_mode": pa.array(np.where(admission + los >= people.death_day[person], "death", "home")[order]),
    })
    total = files = 0
    bounds = np.searchsorted(year[order], YEARS + (YEARS[-1] + 1,))
    for i, y in enumerate(YEARS):
        written = _write(folder / f"year={y}", table.slice(bounds[i], bounds[i + 1] - bounds[i]), rows_per_file)
        total, files = total + written[0], files + written[1]
    return total, files


def _referentials(folder: Path) -> tuple[int, int]:
    atc = pa.table({"atc_code": [d[0] for d in DRUGS], "label": [d[1] for d in DRUGS],
                    "atc_class": [d[0][:3] for d in DRUGS], "unit_price": [d[3] for d in DRUGS]})
    chapters = pa.table({"chapter": [c[0] for c in ICD10_CHAPTERS], "codes": [c[1] for c in ICD10_CHAPTERS],
                         "label": [c[2] for c in ICD10_CHAPTERS]})
    a, b = _write(folder / "atc", atc, 10**9), _write(folder / "icd10_chapters", chapters, 10**9)
    return a[0] + b[0], a[1] + b[1]


def _cohort(folder: Path, people: _People, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng([seed, 4])
    n = max(100, len(people.ids) // 50)
    members = rng.choice(len(people.ids), n, replace=False)
    study_id = np.char.add("S", np.char.zfill((rng.permutation(n) + 1).astype("U7"), 7))
    cohort = pa.table({"study_id": study_id,
                       "inclusion_date": pa.array(START + rng.integers(0, 365, n).astype("timedelta64[D]"), pa.date32()),
                       "arm": rng.choice(np.array(["A", "B"]), n),
                       "sex": people.table.column("sex").to_numpy()[members],
                       "birth_year": people.table.column("birth_year").to_numpy()[members]})
    found = rng.random(n) < 0.95  # the linkage finds about 95 % of the cohort
    linkage = pa.table({"study_id": study_id[found], "patient_id": people.ids[members][found]})
    a, b = _write(folder / "cohort", cohort, 10**9), _write(folder / "linkage", linkage, 10**9)
    return a[0] + b[0], a[1] + b[1]


def _write(folder: Path, table: pa.Table, rows_per_file: int) -> tuple[int, int]:
    folder.mkdir(parents=True, exist_ok=True)
    parts = max(1, math.ceil(table.num_rows / rows_per_file))
    step = math.ceil(table.num_rows / parts) if table.num_rows else 0
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i}.parquet", compression="zstd")
    return table.num_rows, parts
