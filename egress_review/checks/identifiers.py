"""Identifier leaks: an index of the identifying values of a project's datasets, and scans against it.

The index is a sorted numpy array of 64-bit hashes of every distinct identifying value (direct
identifiers, exact dates, postcodes), built once per dataset version and cached as ``.npy``:
1M identifiers are 8 MB, and a lookup is a vectorised ``searchsorted``. Outputs are streamed in
blocks and split into tokens, so a file of any size is scanned in bounded memory. A hash match
without the value itself could in theory be a collision (2^-64 per token); the checker sees the
matching cell, so a false alarm costs one look.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from egress_review.checks import FAIL, PASS, CheckResult, result

BLOCK = 4 * 1024 * 1024
# Separators, and sentence punctuation at the end of a word ("seen on 04/03/2021.").
TOKEN_SPLIT = re.compile(r"[\s,;|\"'<>()\[\]{}=]+|[.:!?]+(?=[\s,;|\"'<>()\[\]{}=]|$)")
POSTCODE_NAMES = re.compile(r"(postcode|postal|code_postal|zip)", re.I)


def _hash(values: Sequence[str] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    if array.size == 0:
        return np.empty(0, dtype=np.uint64)
    return pd.util.hash_array(array, categorize=False)


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


class IdentifierIndex:
    def __init__(self, hashes: np.ndarray) -> None:
        self.hashes = np.unique(hashes.astype(np.uint64))

    def __len__(self) -> int:
        return int(self.hashes.size)

    @classmethod
    def of_values(cls, values: Iterable[object]) -> IdentifierIndex:
        return cls(_hash([form for v in values for form in _forms(v)]))

    @classmethod
    def from_parquet(cls, sources: Iterable[tuple[Path, list[str]]]) -> IdentifierIndex:
        """The index of the named columns of these Parquet files, read one column at a time."""
        import pyarrow.parquet as pq

        parts = []
        for path, columns in sources:
            if not columns:
                continue
            table = pq.read_table(path, columns=columns)
            for name in columns:
                distinct = table.column(name).combine_chunks()
                if hasattr(distinct, "dictionary_decode"):
                    distinct = distinct.dictionary_decode()
                values = pd.unique(np.asarray(distinct.drop_null().to_pylist(), dtype=object))
                parts.append(cls.of_values(values).hashes)
        return cls(np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        np.save(partial, self.hashes)
        partial.replace(path)

    @classmethod
    def load(cls, path: Path) -> IdentifierIndex:
        return cls(np.load(path, allow_pickle=False))

    @classmethod
    def merge(cls, indexes: Iterable[IdentifierIndex]) -> IdentifierIndex:
        return cls(np.concatenate([i.hashes for i in indexes] or [np.empty(0, dtype=np.uint64)]))

    def contains(self, values: Sequence[str]) -> np.ndarray:
        """For each value (stripped), whether it is an identifying value."""
        if not len(values) or not self.hashes.size:
            return np.zeros(len(values), dtype=bool)
        hashed = _hash([v.strip() for v in values])
        at = np.searchsorted(self.hashes, hashed)
        at[at == self.hashes.size] = 0
        return self.hashes[at] == hashed

    def scan_text(self, text: str) -> list[str]:
        """The identifying tokens of a text (notebook outputs, logs)."""
        tokens = [t for t in TOKEN_SPLIT.split(text) if t]
        hits = self.contains(tokens)
        return sorted({t for t, hit in zip(tokens, hits) if hit})

    def scan_file(self, path: Path, *, limit: int = 50) -> tuple[list[str], int]:
        """Stream a text file in blocks: (up to ``limit`` identifying tokens found, their total count)."""
        found: list[str] = []
        total = 0
        rest = b""
        with path.open("rb") as stream:
            while True:
                block = stream.read(BLOCK)
                if not block and not rest:
                    break
                data = rest + block
                cut = data.rfind(b"\n") + 1 if block else len(data)
                if cut == 0:
                    cut = len(data) if len(data) > 4 * BLOCK else 0
                rest, data = data[cut:], data[:cut]
                if not data:
                    continue
                tokens = [t for t in TOKEN_SPLIT.split(data.decode("utf-8", "replace")) if t]
                if not tokens:
                    continue
                hits = self.contains(tokens)
                total += int(hits.sum())
                if len(found) < limit and hits.any():
                    found.extend(t for t, hit in zip(tokens, hits) if hit)
                    found = found[:limit]
        return found, total


def scan_result(index: IdentifierIndex, path: Path) -> CheckResult:
    found, total = index.scan_file(path)
    if total:
        return result("identifier-leak", FAIL, f"{total} identifying value(s) of the project's datasets (patient "
                      f"ids, exact dates, postcodes...) appear in the file: remove them.", values=found)
    return result("identifier-leak", PASS, "No identifying value of the project's datasets was found.")
