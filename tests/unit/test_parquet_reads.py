"""pandas reads one local Parquet file by path through Arrow's filesystem in a workspace
(images/singleuser/tre_parquet_reads.py), so that a script does not abort at its end."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.fs

IMAGE = Path(__file__).resolve().parents[2] / "images" / "singleuser"
sys.path.insert(0, str(IMAGE))
from tre_parquet_reads import wrap  # noqa: E402


def spy():
    calls = []

    def read_parquet(path, *args, **kwargs):
        calls.append((path, args, kwargs))
        return "frame"

    return calls, wrap(read_parquet)


def test_a_local_file_is_read_by_its_absolute_path_with_arrows_filesystem(tmp_path, monkeypatch):
    (tmp_path / "one.parquet").write_bytes(b"PAR1")
    monkeypatch.chdir(tmp_path)
    calls, read = spy()
    assert read("one.parquet", columns=["a"]) == "frame"
    path, args, kwargs = calls[0]
    assert path == str(tmp_path / "one.parquet") and kwargs["columns"] == ["a"]
    assert isinstance(kwargs["filesystem"], pyarrow.fs.LocalFileSystem)
    read(tmp_path / "one.parquet", "pyarrow")  # a Path, the engine given by position
    assert isinstance(calls[1][2]["filesystem"], pyarrow.fs.LocalFileSystem)
    assert wrap(read) is read  # wrapped once


def test_what_is_not_one_local_file_read_with_arrow_is_passed_on_untouched(tmp_path):
    (tmp_path / "one.parquet").write_bytes(b"PAR1")
    own = object()
    calls, read = spy()
    with open(tmp_path / "one.parquet", "rb") as handle:
        read(handle)  # the caller's own file object
    read(str(tmp_path))  # a folder of partitions: pandas already goes by path
    read(str(tmp_path / "one.parquet"), filesystem=own)  # the caller's filesystem
    read(str(tmp_path / "one.parquet"), engine="fastparquet")
    read(str(tmp_path / "one.parquet"), storage_options={"anon": True})
    read("s3://bucket/one.parquet")
    read(str(tmp_path / "missing.parquet"))  # pandas says it is missing, in its own words
    assert all(kwargs.get("filesystem") in (None, own) for _, _, kwargs in calls)
    assert calls[2][2]["filesystem"] is own and len(calls) == 7


def test_a_new_interpreter_reads_the_same_frame_through_the_wrapped_read(tmp_path):
    frame = pd.DataFrame({"a": range(50), "b": ["x"] * 50})
    frame.to_parquet(tmp_path / "one.parquet")
    code = ("import tre_parquet_reads, pandas as pd, sys; "
            "assert pd.read_parquet.__tre_local_file_by_path__ and pd.io.parquet.read_parquet is pd.read_parquet; "
            f"pd.read_parquet({str(tmp_path / 'one.parquet')!r}).to_json(sys.stdout)")
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(IMAGE)}, capture_output=True,
                         text=True, check=True).stdout
    assert pd.read_json(io.StringIO(out)).equals(frame)
