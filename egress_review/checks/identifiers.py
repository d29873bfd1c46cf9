"""Identifier leaks: an index of the identifying values of a project's datasets, and scans against it.

The index is the set of distinct identifying values (direct identifiers, exact dates written as
ISO and as DD/MM/YYYY, postcodes) as one Arrow string array, built once per dataset version and
cached as an Arrow IPC file next to the data it comes from (1M identifiers: about 20 MB). Outputs
are streamed: a CSV through Arrow's multi-threaded reader in blocks, other text in blocks split
into tokens, so a file of any size is scanned in bounded memory. Each block is matched the
cheap way round: the block's distinct tokens form a small hash set that the index is probed
against (one pass over the index per block), then only the hits are located in the block.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from egress_review.checks import FAIL, PASS, CheckResult, result
from egress_review.store import partial_beside

BLOCK = 4 * 1024 * 1024  # per block: the bytes, Arrow's columns and tokens (tens of MB)
# Separators, and sentence punctuation at the end of a word ("seen on 04/03/2021.").
TOKEN_SPLIT = re.compile(r"[\s,;|\"'<>()\[\]{}=]+|[.:!?]+(?=[\s,;|\"'<>()\[\]{}=]|$)")
POSTCODE_NAMES = re.compile(r"(postcode|postal|code_postal|zip)", re.I)


def identifying_columns(columns: Iterable[dict]) -> list[str]:
    """Columns whose values must never leave: direct identifiers, exact dates, postcodes."""
    chosen = []
    for column in columns:
        kind, name, type_ = column.get("identifier"), column.get("name", ""), str(column.get("type", ""))
        if kind == "direct" or (kind == "indirect" and (type_ in ("date", "datetime", "timestamp")
                                                       or POSTCODE_NAMES.search(name))):
            chosen.append(name)
    return chosen


def _forms(value: object) -> list[str]:
    """The ways a value may be written in an output (a date as ISO and as DD/MM/YYYY)."""
    if isinstance(value, (dt.date, pd.Timestamp)):
        day = value.date() if isinstance(value, (dt.datetime, pd.Timestamp)) else value
        return [day.isoformat(), day.strftime("%d/%m/%Y")]
    text = str(value).strip()
    return [text] if text else []


def _column_forms(column: pa.ChunkedArray) -> list[pa.Array]:
    """A dataset column's distinct values as strings, dates in both spellings."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    column = pc.unique(column.drop_null())
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        return [pc.strftime(column, format="%Y-%m-%d"), pc.strftime(column, format="%d/%m/%Y")]
    return [pc.utf8_trim_whitespace(column.cast(pa.string()))]


class IdentifierIndex:
    def __init__(self, values: pa.Array) -> None:
        values = values.cast(pa.string()) if values.type != pa.string() else values
        self.values = pc.unique(pc.drop_null(values))

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def of_values(cls, values: Iterable[object]) -> IdentifierIndex:
        return cls(pa.array([form for v in values for form in _forms(v)], type=pa.string()))

    @classmethod
    def from_parquet(cls, sources: Iterable[tuple[Path, list[str]]]) -> IdentifierIndex:
        """The index of the named columns of these Parquet files, read one column at a time."""
        import pyarrow.parquet as pq

        parts: list[pa.Array] = []
        for path, columns in sources:
            for name in columns:
                parts.extend(_column_forms(pq.read_table(path, columns=[name]).column(name)))
        return cls(pa.concat_arrays(parts) if parts else pa.array([], type=pa.string()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = partial_beside(path)  # replicas sharing the cache may build the same index at once
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, pa.schema([("v", pa.string())])) as out:
            out.write_table(pa.table({"v": self.values}))
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> IdentifierIndex:
        with pa.memory_map(str(path)) as source:
            return cls(pa.ipc.open_file(source).read_all().column("v").combine_chunks())

    @classmethod
    def merge(cls, indexes: Iterable[IdentifierIndex]) -> IdentifierIndex:
        parts = [i.values for i in indexes]
        return cls(pa.concat_arrays(parts) if parts else pa.array([], type=pa.string()))

    def _hits(self, tokens: pa.Array | pa.ChunkedArray) -> pa.Array:
        """Which tokens are identifying: probe the index against the block's distinct tokens."""
        if not len(self.values) or not len(tokens):
            return pa.array([False] * len(tokens))
        found = pc.filter(self.values, pc.is_in(self.values, value_set=pc.unique(tokens)))
        if not len(found):
            return pa.array(np.zeros(len(tokens), dtype=bool))
        return pc.fill_null(pc.is_in(tokens, value_set=found), False)

    def contains(self, values: Sequence[str]) -> np.ndarray:
        """For each value (stripped), whether it is an identifying value."""
        if not len(values):
            return np.zeros(0, dtype=bool)
        hits = self._hits(pa.array([v.strip() for v in values], type=pa.string()))
        return np.asarray(hits.to_numpy(zero_copy_only=False), dtype=bool)

    def scan_text(self, text: str) -> list[str]:
        """The identifying tokens of a text (notebook outputs, logs)."""
        tokens = [t for t in TOKEN_SPLIT.split(text) if t]
        hits = self.contains(tokens)
        return sorted({t for t, hit in zip(tokens, hits) if hit})

    def scan_file(self, path: Path, *, limit: int = 50) -> tuple[list[str], int]:
        """Stream a file in blocks cut at line ends: (up to ``limit`` identifying tokens, their count).

        A CSV or TSV block is parsed by Arrow (cells, and the words of cells with spaces); a block
        Arrow refuses (a quoted line break across blocks, ragged rows) and any other text is split
        into tokens. Only one block is in memory at a time: Arrow's own streaming reader reads ahead
        without bound, so blocks are cut here.
        """
        delimiter = {".csv": ",", ".tsv": "\t"}.get(path.suffix.lower())
        found: list[str] = []
        total = 0
        for data in _blocks(path, BLOCK):
            tokens = _csv_tokens(data, delimiter) if delimiter else None
            if tokens is None:
                tokens = pa.array([t for t in TOKEN_SPLIT.split(data.decode("utf-8", "replace")) if t],
                                  type=pa.string())
            if not len(tokens):
                continue
            hits = self._hits(tokens)
            count = pc.sum(hits).as_py() or 0
            total += count
            if count and len(found) < limit:
                found.extend(pc.filter(tokens, hits).to_pylist()[:limit - len(found)])
        return found, total


def _blocks(path: Path, size: int):
    """The file in blocks of about ``size`` bytes, each ending at a line end (or the file's end)."""
    rest = b""
    with path.open("rb") as stream:
        while True:
            block = stream.read(size)
            if not block:
                if rest:
                    yield rest
                return
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < 4 * size:
                rest = data
                continue
            cut = cut or len(data)
            rest = data[cut:]
            yield data[:cut]


def _csv_tokens(data: bytes, delimiter: str) -> pa.ChunkedArray | None:
    import pyarrow.csv as pacsv

    try:
        table = pacsv.read_csv(pa.BufferReader(data), read_options=pacsv.ReadOptions(autogenerate_column_names=True),
                               parse_options=pacsv.ParseOptions(delimiter=delimiter),
                               convert_options=pacsv.ConvertOptions(column_types=_strings(data, delimiter),
                                                                    strings_can_be_null=False))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    cells = [c.combine_chunks() for c in table.columns if len(c)]
    if any(c.type != pa.string() for c in cells):
        return None
    spaced = [pc.filter(c, pc.match_substring(c, " ")) for c in cells]
    words = [pc.list_flatten(pc.utf8_split_whitespace(c)) for c in spaced if len(c)]
    return pa.chunked_array(cells + words, type=pa.string())


def _strings(data: bytes, delimiter: str) -> dict[str, pa.DataType]:
    """Every column read as text (no type inference that would turn "007" into 7)."""
    first = data[:data.find(b"\n") + 1 or len(data)].decode("utf-8", "replace")
    return {f"f{i}": pa.string() for i in range(len(first.split(delimiter)) + 64)}


def scan_result(index: IdentifierIndex, path: Path) -> CheckResult:
    found, total = index.scan_file(path)
    if total:
        return result("identifier-leak", FAIL, f"{total} identifying value(s) of the project's datasets (patient "
                      f"ids, exact dates, postcodes...) appear in the file: remove them.", values=found)
    return result("identifier-leak", PASS, "No identifying value of the project's datasets was found.")
