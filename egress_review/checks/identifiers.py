"""Identifier leaks: an index of the identifying values of a project's datasets, and scans against it.

The index is the set of distinct identifying values (direct identifiers, exact dates written as
ISO and as DD/MM/YYYY, postcodes) as one Arrow string array, built once per dataset version and
cached as an Arrow IPC file next to the data it comes from (1M identifiers: about 20 MB). Outputs
are streamed as bytes in blocks cut between tokens, so a file of any size is scanned in bounded
memory and a token is never split. A token is what lies between two separators (``TOKEN_SPLIT``:
blanks, CSV and TSV delimiters, quotes, brackets; sentence punctuation ending a word), so a value
is found in any column, quoted or not, at a line's start or end, and never inside a longer token.
Each block is tokenised at C speed (``bytes.translate`` and numpy), a lookup table on the tokens'
length, first and last byte drops nearly all of them, and only the few left are hashed and
matched against the index, in batches (one pass over the index per batch). Values holding spaces
(names, addresses) are matched against every stretch between the other separators.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from egress_review.checks import FAIL, PASS, CheckResult, result
from egress_review.checks.tempnames import partial_beside
from egress_review.checks.i18n import Msg

BLOCK = 8 * 1024 * 1024  # per block: the bytes, their tokenised copy and numpy positions (tens of MB)
# What a token is (the scan's definition; it tokenises bytes the same way at C speed): separators,
# and sentence punctuation at the end of a word ("seen on 04/03/2021.").
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


RUN = 1 << 22  # distinct values gathered from the batches before they become a run
BATCH_ROWS = 1 << 20  # rows read at once from a Parquet file (within one row group)


class _DistinctRuns:
    """The distinct values of a stream of arrays, in bounded memory: values gather until ``run``
    are held, their distinct ones become a run, and the last two runs merge (distinct of both)
    while the newer holds at least half as many as the older, as in a log-structured merge. Each
    value is hashed about log(values / run) times, and at most two runs and a batch are held
    beside the result; compacting everything held each time the buffer filled (as before) hashed
    the whole set again for every few files once the distinct values outnumbered the buffer."""

    def __init__(self, run: int) -> None:
        self.run = run
        self.runs: list[pa.Array] = []
        self.pending: list[pa.Array] = []
        self.held = 0

    def add(self, arrays: Iterable[pa.Array]) -> None:
        for array in arrays:
            self.pending.append(array)
            self.held += len(array)
        if self.held >= self.run:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        self.runs.append(pc.unique(pa.concat_arrays(self.pending)))
        self.pending, self.held = [], 0
        while len(self.runs) > 1 and 2 * len(self.runs[-1]) >= len(self.runs[-2]):
            newer = self.runs.pop()
            self.runs[-1] = pc.unique(pa.concat_arrays([self.runs[-1], newer]))

    def result(self) -> pa.Array:
        """Every distinct value once, sorted."""
        self._flush()
        if not self.runs:
            return pa.array([], type=pa.string())
        merged = self.runs[0] if len(self.runs) == 1 else pc.unique(pa.concat_arrays(self.runs))
        self.runs = []
        return merged.take(pc.sort_indices(merged))


class IdentifierIndex:
    def __init__(self, values: pa.Array) -> None:
        values = values.cast(pa.string()) if values.type != pa.string() else values
        values = pc.unique(pc.drop_null(values))
        self.values = pc.filter(values, pc.not_equal(values, ""))  # an empty value would match every gap
        self._sieve: _Sieve | None = None
        self._phrases: list[_PhrasePass] = []

    def __len__(self) -> int:
        return len(self.values)

    @classmethod
    def of_values(cls, values: Iterable[object]) -> IdentifierIndex:
        return cls(pa.array([form for v in values for form in _forms(v)], type=pa.string()))

    @classmethod
    def from_parquet(cls, sources: Iterable[tuple[Path, list[str]]], *, run: int = RUN) -> IdentifierIndex:
        """The index of the named columns of these Parquet files, built incrementally: batch by
        batch of each file's row groups, each column's distinct values go into ``_DistinctRuns``,
        so memory follows the number of distinct values, not of rows (10^8 claims rows hold a few
        million people and 730 days). The values come out sorted: the same files give the same
        index, byte for byte, whatever the order of their batches."""
        import pyarrow.parquet as pq

        distinct = _DistinctRuns(run)
        for path, columns in sources:
            if not columns:
                continue
            parquet = pq.ParquetFile(path)
            try:
                for batch in parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(columns)):
                    for name in columns:
                        distinct.add(_column_forms(batch.column(name)))
            finally:
                parquet.close()
        return cls(distinct.result())

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
        """The identifying tokens of a text (notebook outputs, logs), each once, sorted."""
        scan = _Scan(self, limit=None)
        scan.feed(text.encode("utf-8", "replace") + b"\n")
        return sorted(set(scan.finish()[0]))

    def scan_file(self, path: Path, *, limit: int = 50) -> tuple[list[str], int]:
        """Stream a file in blocks cut between tokens: (up to ``limit`` identifying tokens, their count).

        Any file is read as bytes (CSV, TSV and text alike, in any column, quoted or not): a token is
        what lies between two separators, so only one block is in memory at a time and no token is
        ever split across blocks. UTF-8 as everywhere in the checks; bytes that are not UTF-8 can
        match nothing, as before.
        """
        scan = _Scan(self, limit=limit)
        for data in _blocks(path, BLOCK):
            scan.feed(data)
        return scan.finish()

    def _sieves(self) -> tuple[_Sieve, list[_PhrasePass]]:
        """The lookup table of the values that are single tokens, and the passes that find the
        values holding separators ("Jean Dupont", "O'Brien", "Smith, John")."""
        if self._sieve is None:
            spaced = pc.match_substring_regex(self.values, r"[\s,;|\"'<>()\[\]{}=]")
            phrases = pc.filter(self.values, spaced)
            words = pc.filter(self.values, pc.invert(spaced)) if len(phrases) else self.values
            self._sieve = _Sieve(words.combine_chunks() if isinstance(words, pa.ChunkedArray) else words)
            self._phrases = _phrase_passes(phrases)
        return self._sieve, self._phrases


# --- streaming scan ------------------------------------------------------------------------------
# Every separator of TOKEN_SPLIT is one ASCII byte, so a block of bytes is tokenised at C speed:
# ``bytes.translate`` turns each separator into a line feed, numpy finds the line feeds, and the
# block itself becomes an Arrow string array of its tokens without a copy (each token keeps its
# trailing line feed). A lookup table on (length, first byte, last byte) of the identifying values
# then discards almost every token (counts, labels, decimals) before any hashing; the few that
# remain are matched against the index in batches.
SEPARATORS = b" \t\n\r\f\v\x1c\x1d\x1e\x1f,;|\"'<>()[]{}="
TRAILING = b".:!?"  # sentence punctuation ending a word ("seen on 04/03/2021.") is not part of it
_TO_LINE_FEED = bytes.maketrans(SEPARATORS, b"\n" * len(SEPARATORS))
_TRIMMED = "\n .:!?"
# Unicode spaces (what ``\s`` means for text): no-break spaces, the typographic spaces, ideographic.
WIDE_SPACES = re.compile(rb"\xc2[\x85\xa0]|\xe1\x9a\x80|\xe2\x80[\x80-\x8a\xa8\xa9\xaf]|\xe2\x81\x9f|\xe3\x80\x80")
_WIDE_LEADS = (b"\xc2\x85", b"\xc2\xa0", b"\xe1\x9a", b"\xe2\x80", b"\xe2\x81", b"\xe3\x80\x80")
MAX_LENGTH = 255  # tokens longer than the longest identifier cannot match; the table stops here
MAX_ENDING = 3  # "P0042?!." is found; a value followed by four marks or more is not
BATCH = 1 << 20  # candidate tokens matched against the index at once


def _tokenised(data: bytes, separators: bytes, *, keep_spaces: bool = False) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The block with every separator turned into a line feed, at C speed: as bytes, as numpy, and
    the positions of its line feeds. (Sentence punctuation ending a token is trimmed later, from
    the few tokens the sieve keeps.)"""
    if not data.isascii() and any(lead in data for lead in _WIDE_LEADS):
        data = WIDE_SPACES.sub(b" " if keep_spaces else b"\n", data)
    data = data.translate(separators)
    raw = np.frombuffer(data, dtype=np.uint8)
    return data, raw, np.flatnonzero(raw == 10)


def _token_array(data: bytes, ends: np.ndarray, chosen: np.ndarray | None = None) -> pa.Array:
    """The tokens of a tokenised block (each with its trailing line feed) as an Arrow string array
    over the block's own bytes, without a copy; only the ``chosen`` ones, copied, when given."""
    offsets = np.empty(len(ends) + 1, dtype=np.int32)
    offsets[0] = 0
    offsets[1:] = ends + 1
    tokens = pa.Array.from_buffers(pa.string(), len(ends), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return tokens if chosen is None else tokens.take(pa.array(chosen))


class _Sieve:
    """Which tokens could be identifying values, in numpy: first by (length, last byte), a table
    that stays in the cache, then the few left by (length, first byte, last byte). A value may be
    followed by up to ``MAX_ENDING`` marks of sentence punctuation ("P0042." or "P0042?!"): such
    tokens pass too, and the marks are trimmed before matching."""

    def __init__(self, values: pa.Array) -> None:
        self.ends = np.zeros((MAX_LENGTH + 2) << 8, dtype=bool)
        self.table = np.zeros((MAX_LENGTH + 2) << 16, dtype=bool)
        if not len(values):
            return
        raw = np.frombuffer(values.buffers()[2], dtype=np.uint8)
        offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)[values.offset:values.offset + len(values) + 1]
        lengths = np.minimum(np.diff(offsets), MAX_LENGTH + 1)  # values are never empty
        first, last = raw[offsets[:-1]], raw[offsets[1:] - 1]
        self._add(lengths, first, last)
        # followed by punctuation: only the distinct (length, first byte) pairs matter
        pairs = np.zeros((MAX_LENGTH + 2) << 8, dtype=bool)
        pairs[(lengths.astype(np.int32) << 8) | first] = True
        pairs = np.flatnonzero(pairs)
        for extra in range(1, MAX_ENDING + 1):
            for mark in TRAILING:
                self._add(np.minimum((pairs >> 8) + extra, MAX_LENGTH + 1), pairs & 0xFF, np.full(len(pairs), mark))

    def _add(self, lengths: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
        self.ends[(lengths.astype(np.int32) << 8) | last] = True
        self.table[self._keys(lengths, first, last)] = True

    @staticmethod
    def _keys(lengths: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
        return (lengths.astype(np.int32) << 16) | (first.astype(np.int32) << 8) | last

    def candidates(self, raw: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Positions of the tokens worth matching, from the tokenised block and its line feeds
        (in place and in 32 bits: this runs on every token of the file)."""
        before = ends.astype(np.int32)  # each token's last byte, then its length
        keys = np.empty(len(before), dtype=np.int32)  # without the line feed
        keys[0] = before[0]
        np.subtract(before[1:], before[:-1], out=keys[1:])
        keys[1:] -= 1
        np.minimum(keys, MAX_LENGTH + 1, out=keys)
        before -= 1  # an empty token's last byte is the separator before it: its length 0 never passes
        last = raw.take(before)
        keys <<= 8
        keys |= last
        maybe = np.flatnonzero(self.ends.take(keys))
        if not len(maybe):
            return maybe
        starts = np.where(maybe > 0, ends[maybe - 1] + 1, 0)
        lengths = np.minimum(ends[maybe] - starts, MAX_LENGTH + 1)
        return maybe[self.table[self._keys(lengths, raw.take(starts), last[maybe])]]


@dataclass(frozen=True)
class _PhrasePass:
    """One way of cutting a block into stretches for values that hold separators: at every
    separator but ``kept`` (those inside the values), keeping the stretches that hold one of them."""
    table: bytes  # bytes.maketrans: the separators that cut, to line feeds
    keeps_spaces: bool
    inside: str  # a regex character class: a stretch holding none is a single token, matched above


# Cells of a CSV or TSV file, for values that hold the file's own delimiter ("Smith, John" is
# written quoted): the stretches between quotes, tabs and line ends.
_CELL_SEPARATORS = b"\n\r\t\"\x1c\x1d\x1e\x1f"
_DELIMITERS = set(",;|")
MAX_PHRASE_PASSES = 6  # beyond that many kinds of value, one pass keeps all their separators


def _phrase_passes(phrases: pa.Array) -> list[_PhrasePass]:
    """The passes that find these values: one per set of separators found inside them (most
    indexes have one or two: spaces; spaces and apostrophes), plus the cells of a CSV when some
    value holds a delimiter."""
    if not len(phrases):
        return []
    separators = [chr(b) for b in SEPARATORS if chr(b) not in "\x1c\x1d\x1e\x1f"]
    inside = np.stack([np.asarray(pc.match_substring(phrases, s).to_numpy(zero_copy_only=False), dtype=bool)
                       for s in separators])
    kinds = {tuple(column) for column in np.unique(inside.T, axis=0)}
    kept_sets = [frozenset(s for s, present in zip(separators, kind) if present) for kind in kinds]
    if len(kept_sets) > MAX_PHRASE_PASSES:
        kept_sets = [frozenset().union(*kept_sets)]
    passes = [_phrase_pass(kept) for kept in kept_sets if kept]
    if any(kept & _DELIMITERS for kept in kept_sets):
        passes.append(_PhrasePass(bytes.maketrans(_CELL_SEPARATORS, b"\n" * len(_CELL_SEPARATORS)), True,
                                  "[" + re.escape("".join(_DELIMITERS | {" "})) + "]"))
    return passes


def _phrase_pass(kept: frozenset[str]) -> _PhrasePass:
    whitespace = {" ", "\t", "\n", "\r", "\f", "\v"}
    if kept & whitespace:
        kept = kept | {" "}  # a value's inner space may be any space of the text
    cutting = bytes(b for b in SEPARATORS if chr(b) not in kept or chr(b) == "\n")
    return _PhrasePass(bytes.maketrans(cutting, b"\n" * len(cutting)), " " in kept,
                       "[" + re.escape("".join(sorted(kept))) + "]")


class _Scan:
    """One scan's state: the candidate tokens waiting to be matched, the hits so far."""

    def __init__(self, index: IdentifierIndex, limit: int | None) -> None:
        self.index, self.limit = index, limit
        self.sieve, self.phrases = index._sieves()
        self.pending: list[pa.Array] = []
        self.waiting = 0
        self.found: list[str] = []
        self.total = 0

    def feed(self, data: bytes) -> None:
        """Tokenise one block (ending with a separator) and keep the tokens that may match."""
        if not len(self.index):
            return
        tokenised, raw, ends = _tokenised(data, _TO_LINE_FEED)
        chosen = self.sieve.candidates(raw, ends)
        if len(chosen):
            self._wait(_token_array(tokenised, ends, chosen))
        if self.phrases:
            self._phrase_hits(data)

    def _phrase_hits(self, data: bytes) -> None:
        """Values holding separators: the stretches between the other separators, each pass its
        own cut. An occurrence several passes find (a name with a space, in a quoted cell) counts
        once: hits are told apart by where they start in the block."""
        hits: dict[int, str] = {}
        for phrase in self.phrases:
            tokenised, _, ends = _tokenised(data, phrase.table, keep_spaces=phrase.keeps_spaces)
            stretches = _token_array(tokenised, ends)
            inside = np.flatnonzero(np.asarray(
                pc.match_substring_regex(stretches, phrase.inside).to_numpy(zero_copy_only=False), dtype=bool))
            if not len(inside):
                continue
            starts = np.where(inside > 0, ends[inside - 1] + 1, 0)
            stretches = pc.ascii_rtrim(stretches.take(pa.array(inside)), characters=_TRIMMED)
            trimmed = pc.ascii_ltrim(stretches, characters=" ")
            lead = np.asarray(pc.subtract(pc.binary_length(stretches), pc.binary_length(trimmed)))
            found = np.asarray(self.index._hits(trimmed).to_numpy(zero_copy_only=False), dtype=bool)
            for at, value in zip((starts + lead)[found], pc.filter(trimmed, pa.array(found)).to_pylist()):
                hits.setdefault(int(at), value)
        self.total += len(hits)
        room = len(hits) if self.limit is None else self.limit - len(self.found)
        if room > 0:
            self.found.extend(value for _, value in sorted(hits.items())[:room])

    def _wait(self, tokens: pa.Array) -> None:
        self.pending.append(tokens)
        self.waiting += len(tokens)
        if self.waiting >= BATCH:
            self._match()

    def _match(self) -> None:
        """Match the waiting tokens against the index: one pass over the index per batch."""
        if not self.pending:
            return
        tokens = pc.ascii_ltrim(pc.ascii_rtrim(pa.concat_arrays(self.pending), characters=_TRIMMED),
                               characters=" ")
        self.pending, self.waiting = [], 0
        values = self.index.values
        known = pc.filter(values, pc.is_in(values, value_set=pc.unique(tokens)))
        if not len(known):
            return
        hits = pc.filter(tokens, pc.fill_null(pc.is_in(tokens, value_set=known), False))
        self.total += len(hits)
        room = len(hits) if self.limit is None else self.limit - len(self.found)
        if room > 0:
            self.found.extend(hits.slice(0, room).to_pylist())

    def finish(self) -> tuple[list[str], int]:
        self._match()
        return self.found, self.total


def _blocks(path: Path, size: int):
    """The file in blocks of about ``size`` bytes, each ending with a separator (a line end when
    the block has one), so that no token is split. A stretch without any separator longer than
    ``4 * size`` cannot be an identifier: it is skipped whole, never cut into pieces that might
    look like one. A UTF-8 byte order mark is dropped."""
    rest, skipping, first = b"", False, True
    with path.open("rb") as stream:
        while True:
            block = stream.read(size)
            if first:
                block, first = block.removeprefix(b"\xef\xbb\xbf"), False
            if not block:
                if rest and not skipping:
                    yield rest + b"\n"
                return
            data = rest + block
            if skipping:
                start = _after_first_separator(data)
                if start < 0:
                    rest = b""
                    continue
                data, skipping = data[start:], False
            cut = data.rfind(b"\n") + 1 or _separators_marked(data).rfind(b"\n") + 1
            if cut == 0:
                rest, skipping = (data, False) if len(data) <= 4 * size else (b"", True)
                continue
            rest = data[cut:]
            yield data[:cut]


def _separators_marked(data: bytes) -> bytes:
    """The bytes with every byte of every separator (Unicode spaces too) turned into a line feed,
    at the same positions."""
    if not data.isascii():
        data = WIDE_SPACES.sub(lambda space: b"\n" * len(space.group()), data)
    return data.translate(_TO_LINE_FEED)


def _after_first_separator(data: bytes) -> int:
    """Where the first token after the first separator starts, or -1 when there is no separator."""
    marked = _separators_marked(data)
    start = marked.find(b"\n")
    if start < 0:
        return -1
    while start < len(marked) and marked[start] == 10:
        start += 1
    return start


def scan_result(index: IdentifierIndex, path: Path) -> CheckResult:
    found, total = index.scan_file(path)
    if total:
        return result("identifier-leak", FAIL, Msg("{values} identifying value(s) of the project's datasets (patient "
                                                   "ids, exact dates, postcodes...) appear in the file: remove them.",
                                                   values=total), values=found)
    return result("identifier-leak", PASS, Msg("No identifying value of the project's datasets was found."))
