"""Issue 19, item 6: `tre datasets add` registers a new version with its columns' identifier tags
carried forward from the previous version, or read from the Parquet schema's metadata, or given
with --tag; a new untagged column is named in a warning. Run through the real command (Typer's
CliRunner) against a real catalogue."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tre_core.cli import app
from tre_core.db import session_scope
from datasets.models import Dataset

runner = CliRunner()


@pytest.fixture
def tre(catalogue_url, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("TRE_HOME", str(tmp_path))
    monkeypatch.setenv("TRE_DATABASE_URL", catalogue_url)

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def write_version(folder: Path, fields: dict[str, pa.Array], metadata: dict[str, dict[bytes, bytes]] | None = None):
    """A new version's file in the dataset's folder (the old file replaced, as a steward does)."""
    for old in folder.glob("*.parquet"):
        old.unlink()
    schema = pa.schema([pa.field(name, array.type, metadata=(metadata or {}).get(name)) for name, array in fields.items()])
    pq.write_table(pa.table(list(fields.values()), schema=schema), folder / "claims.parquet")


def add(tre, version: str, *extra: str):
    return tre("datasets", "add", "claims", "--as", "steward", "--path", "claims", "--title", "Claims",
               "--controller", "CNAM", "--version", version, *extra)


def tags(url: str) -> dict[str, str | None]:
    with session_scope(url) as session:
        return {c["name"]: c["identifier"] for c in session.get(Dataset, "claims").columns}


def test_a_new_version_keeps_the_previous_tags_and_warns_on_a_new_untagged_column(tre, catalogue_url, tmp_path):
    # the demo catalogue's claims: patient_id direct, region indirect, amount_reimbursed untagged
    write_version(tmp_path / "data" / "claims", {
        "patient_id": pa.array(["p1", "p2"]), "region": pa.array(["11", "84"]),
        "amount_reimbursed": pa.array([12.5, 30.0]), "nir_hash": pa.array(["x", "y"])})
    result = add(tre, "2025.1")
    assert result.exit_code == 0, result.output
    assert "Registered claims 2025.1" in result.output
    assert "nir_hash is new in claims 2025.1" in result.output.replace("\n", " ")
    assert tags(catalogue_url) == {"patient_id": "direct", "region": "indirect", "amount_reimbursed": None,
                                   "nir_hash": None}
    with session_scope(catalogue_url) as session:
        columns = {c["name"]: c for c in session.get(Dataset, "claims").columns}
    assert columns["patient_id"]["description"] == "Pseudonym (BEN_NIR_PSA)"  # carried with the tag
    assert columns["nir_hash"]["type"] == "string"


def test_tags_from_the_parquet_metadata_and_the_command_line_win(tre, catalogue_url, tmp_path):
    write_version(tmp_path / "data" / "claims", {
        "patient_id": pa.array(["p1", "p2"]), "region": pa.array(["11", "84"]),
        "nir_hash": pa.array(["x", "y"]), "commune": pa.array(["75056", "13055"])},
        metadata={"nir_hash": {b"tre.identifier": b"direct", b"tre.description": b"Hashed NIR"},
                  "region": {b"tre.identifier": b"none"}})
    result = add(tre, "2025.2", "--tag", "commune=indirect")
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output  # every new column is tagged
    assert tags(catalogue_url) == {"patient_id": "direct", "region": None, "nir_hash": "direct",
                                   "commune": "indirect"}


@pytest.mark.parametrize(("tag", "message"), [
    ("commune=secret", "write COLUMN=direct, COLUMN=indirect or COLUMN=none"),
    ("ghost=direct", "--tag names ghost, which the version's Parquet files do not have"),
])
def test_a_bad_tag_is_refused_and_nothing_is_registered(tre, catalogue_url, tmp_path, tag, message):
    write_version(tmp_path / "data" / "claims", {"patient_id": pa.array(["p1"]), "commune": pa.array(["75056"])})
    result = add(tre, "2025.3", "--tag", tag)
    assert result.exit_code == 1
    assert message in result.output.replace("\n", " ")
    with session_scope(catalogue_url) as session:
        assert session.get(Dataset, "claims").version == "2024.1"


def test_the_identifier_leak_check_still_sees_the_identifiers_of_the_new_version(tre, catalogue_url, tmp_path):
    """The reason for all this: the egress check reads the identifying columns from the catalogue."""
    from egress_review.checks.identifiers import identifying_columns

    write_version(tmp_path / "data" / "claims", {"patient_id": pa.array(["p1"]), "care_date": pa.array(["2024-01-02"])})
    assert add(tre, "2025.4").exit_code == 0
    with session_scope(catalogue_url) as session:
        found = identifying_columns(session.get(Dataset, "claims").columns)
    assert found == ["patient_id", "care_date"]
