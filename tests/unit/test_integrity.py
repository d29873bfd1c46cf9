"""Manifests: registration walks the whole tree and refuses what a workspace must not get; the
check before a mount compares the tree with the manifest (path, size, inode, mtime), reads
nothing, and names the file that differs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets.integrity import DatasetIntegrityError, verify_dataset_folder
from datasets.manifest import ManifestError, build_manifest, hashed_so_far, make_read_only, merkle_root


def write(path: Path, rows: int = 3, extra: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {"person_id": [f"p{i}" for i in range(rows)], "amount": [float(i) for i in range(rows)]}
    if extra:
        columns["extra"] = list(range(rows))
    pq.write_table(pa.table(columns), path)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "data"
    folder = root / "dcir"
    for year in (2022, 2023):
        for month in (1, 2):
            write(folder / "claims" / f"year={year}" / f"month={month:02d}" / "part-0.parquet", rows=year - 2020)
    write(folder / "stays" / "year=2023" / "part-0.parquet", rows=5)
    (folder / "README.md").write_text("# DCIR extract\n")
    return root, folder


def test_registration_walks_every_nested_file(tree):
    _, folder = tree
    manifest = build_manifest(folder)
    paths = [f.path for f in manifest.files]
    assert paths == sorted(paths) and len(paths) == 6 and "claims/year=2023/month=02/part-0.parquet" in paths
    assert manifest.tables["claims"]["rows"] == 2 * 2 + 2 * 3 and manifest.tables["stays"]["rows"] == 5
    assert manifest.tables["claims"]["partitions"] == ["year=2022/month=01", "year=2022/month=02",
                                                       "year=2023/month=01", "year=2023/month=02"]
    assert manifest.tables["claims"]["partition_keys"] == ["year", "month"]
    assert manifest.tables["claims"]["schema"] == [["person_id", "string"], ["amount", "double"]]
    assert manifest.root_hash == merkle_root((f.path, f.size, f.sha256) for f in manifest.files)
    assert all(len(f.sha256) == 64 and f.inode == os.stat(folder / f.path).st_ino for f in manifest.files)


def test_the_root_hash_changes_with_any_file(tree):
    _, folder = tree
    before = build_manifest(folder).root_hash
    write(folder / "claims" / "year=2022" / "month=01" / "part-0.parquet", rows=7)
    assert build_manifest(folder).root_hash != before


@pytest.mark.parametrize(("make", "message"), [
    (lambda f: (f / "claims" / "year=2022" / "notes.csv").write_text("a\n"), "notes.csv is not a Parquet file"),
    (lambda f: (f / "claims" / ".hidden").write_text("a\n"), ".hidden is not a Parquet file"),
    (lambda f: os.symlink("/etc/passwd", f / "claims" / "year=2022" / "pw.parquet"), "pw.parquet is a symbolic link"),
    (lambda f: os.mkfifo(f / "stays" / "pipe.parquet"), "pipe.parquet is not a regular file"),
    (lambda f: write(f / "claims" / "year=2023" / "month=03" / "part-0.parquet", extra=True),
     "table claims: claims/year=2023/month=03/part-0.parquet has columns .*extra int64.* every partition"),
    (lambda f: write(f / "claims" / "misc" / "part-0.parquet"), "folder misc inside table claims is not a partition"),
])
def test_registration_refuses_bad_trees_naming_the_file(tree, make, message):
    _, folder = tree
    make(folder)
    modes = {p: p.stat().st_mode for p in folder.rglob("*") if not p.is_symlink()}
    with pytest.raises(ManifestError, match=message) as refused:
        build_manifest(folder)
    assert "Nothing was registered" in str(refused.value)
    assert {p: p.stat().st_mode for p in folder.rglob("*") if not p.is_symlink()} == modes  # nothing changed


def test_an_unreadable_file_is_refused(tree, monkeypatch):
    _, folder = tree
    real_open = open

    def failing_open(path, *args, **kwargs):
        if str(path).endswith("stays/year=2023/part-0.parquet"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)
    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(ManifestError, match="stays/year=2023/part-0.parquet cannot be read"):
        build_manifest(folder)


def test_registration_makes_the_tree_read_only_without_changing_it(tree):
    _, folder = tree
    manifest = build_manifest(folder)
    make_read_only(folder)
    for path in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o555 if path.is_dir() else 0o444), path
        assert (path.stat().st_uid, path.stat().st_gid) == ((0, 0) if os.geteuid() == 0 else (os.getuid(), os.getgid()))
    verify_dataset_folder("dcir", folder.parent, folder, manifest.rows())


def _registered(tree):
    root, folder = tree
    return root, folder, build_manifest(folder).rows()


def test_an_untouched_tree_passes_and_nothing_is_read(tree):
    root, folder, rows = _registered(tree)
    before = hashed_so_far()
    for _ in range(3):
        verify_dataset_folder("dcir", root, folder, rows)
    assert hashed_so_far() == before


NESTED = "claims/year=2023/month=02/part-0.parquet"


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: write(f / "claims" / "year=2023" / "month=03" / "part-0.parquet"),
     "claims/year=2023/month=03/part-0.parquet was added"),
    (lambda f: (f / NESTED).unlink(), f"{NESTED} is missing"),
    (lambda f: (f / NESTED).rename(f / "claims/year=2023/month=02/part-1.parquet"),
     f"{NESTED} was renamed to claims/year=2023/month=02/part-1.parquet"),
    (lambda f: write(f / NESTED, rows=9), f"{NESTED} was changed"),
    (lambda f: os.utime(f / NESTED, ns=(1, 1)), f"{NESTED} was changed"),
    (lambda f: ((f / NESTED).unlink(), os.symlink("/etc/hostname", f / NESTED)), f"{NESTED} is a symbolic link"),
    (lambda f: os.symlink("/etc", f / "claims" / "year=2023" / "etc"), "claims/year=2023/etc is a symbolic link"),
])
def test_a_nested_change_refuses_the_mount_naming_the_file(tree, change, message):
    root, folder, rows = _registered(tree)
    change(folder)
    with pytest.raises(DatasetIntegrityError, match=message):
        verify_dataset_folder("dcir", root, folder, rows)


def test_a_folder_leading_outside_the_data_root_is_refused(tree, tmp_path):
    root, folder, rows = _registered(tree)
    os.symlink(folder, root / "elsewhere")
    outside = tmp_path / "outside"
    folder.rename(outside)
    os.symlink(outside, folder)
    with pytest.raises(DatasetIntegrityError, match="outside the data root"):
        verify_dataset_folder("dcir", root, folder, rows)


def test_a_version_without_manifest_is_not_mounted(tree):
    root, folder = tree
    with pytest.raises(DatasetIntegrityError, match="no manifest.*tre datasets add"):
        verify_dataset_folder("dcir", root, folder, [])


def test_registration_writes_the_documentation_into_the_version(tree):
    root, folder = tree
    plain = build_manifest(folder)
    manifest = build_manifest(folder, describe=("dcir", "2024.1"))
    doc = (folder / "_DATASET.md").read_text()
    assert manifest.root_hash == plain.root_hash and manifest.root_hash in doc
    assert "# dcir 2024.1" in doc and "## Table claims" in doc and "| person_id | string |" in doc
    assert "Partitioned by: year, month; 4 partitions" in doc and "Rows: 10 in 4 files" in doc
    assert "_DATASET.md" in [f.path for f in manifest.files]
    verify_dataset_folder("dcir", root, folder, manifest.rows())
    inode = (folder / "_DATASET.md").stat().st_ino
    assert build_manifest(folder, describe=("dcir", "2024.1")).rows() == manifest.rows()  # a reload rewrites nothing
    assert (folder / "_DATASET.md").stat().st_ino == inode
