"""A dataset whose files changed since registration, or that leads out of the data root, is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from datasets.catalogue import describe_files
from datasets.integrity import DatasetIntegrityError, clear_cache, verify_dataset_folder


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path / "data"
    folder = root / "claims"
    folder.mkdir(parents=True)
    (folder / "claims.csv").write_text("patient_id,amount\na,1\n")
    hashes, _ = describe_files(folder)
    clear_cache()
    return root, folder, hashes


def test_an_untouched_dataset_passes(dataset):
    root, folder, hashes = dataset
    verify_dataset_folder("claims", root, folder, hashes)


def test_a_changed_file_is_caught(dataset):
    root, folder, hashes = dataset
    verify_dataset_folder("claims", root, folder, hashes)  # fills the cache
    with (folder / "claims.csv").open("a") as stream:
        stream.write("b,2\n")
    with pytest.raises(DatasetIntegrityError, match="does not match its registered sha256"):
        verify_dataset_folder("claims", root, folder, hashes)


def test_added_and_missing_files_are_named(dataset):
    root, folder, hashes = dataset
    (folder / "extra.csv").write_text("x\n")
    with pytest.raises(DatasetIntegrityError, match="added: extra.csv"):
        verify_dataset_folder("claims", root, folder, hashes)
    (folder / "extra.csv").unlink()
    (folder / "claims.csv").unlink()
    with pytest.raises(DatasetIntegrityError, match="missing: claims.csv"):
        verify_dataset_folder("claims", root, folder, hashes)


def test_links_leading_out_are_refused(dataset, tmp_path):
    root, folder, hashes = dataset
    (tmp_path / "secret").write_text("not for this project\n")
    os.symlink(tmp_path / "secret", folder / "claims-extra.csv")
    with pytest.raises(DatasetIntegrityError, match="outside the dataset"):
        verify_dataset_folder("claims", root, folder, hashes)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.symlink(outside, root / "lab_results")
    with pytest.raises(DatasetIntegrityError, match="outside the data root"):
        verify_dataset_folder("lab_results", root, root / "lab_results", {})
