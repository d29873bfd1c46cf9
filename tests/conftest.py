"""Shared fixtures: a catalogue database loaded from the demo YAML, over small dataset folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasets import catalogue as cat
from datasets.cli import DEMO_CATALOGUE
from datasets.db import session_scope, upgrade


def make_dataset_folders(data_root: Path) -> None:
    """Stand-in dataset folders for tests that need the catalogue but not the demo's data."""
    import pandas as pd

    for slug in ("claims", "hospital_stays", "lab_results"):
        folder = data_root / slug
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"patient_id": ["a", "b"], "value": [1, 2]}).to_parquet(folder / f"{slug}.parquet")


@pytest.fixture
def catalogue_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'tre.sqlite'}"
    upgrade(url)
    make_dataset_folders(tmp_path / "data")
    with session_scope(url) as session:
        cat.load_catalogue(session, cat.read_catalogue_file(DEMO_CATALOGUE), tmp_path / "data")
    return url
