"""Table rules: minimum cell count, zeros, negative values, rounding, microdata, differencing.

A table is read into a grid of strings (row 0 is the file's first line), so every cell the rules
name is the cell the checker sees on the review page. Layout detection is simple and stated: the
first row is a header, and so is any following row whose value cells are all empty (the index-name
row pandas writes under a crosstab's header); the first column holds labels, and so does every next
column whose body cells are all non-numeric. Value columns whose numbers are all whole are counts;
others are statistics (means, sums) whose counts the file does not hold, so they go to review.
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from egress_review.checks import FAIL, PASS, REVIEW, CheckContext, CheckResult, Released, result
from egress_review.checks.cells import formula_cells, statistics_beside_counts, statistics_result
from egress_review.checks.i18n import Msg

TABLE_SUFFIXES = {".csv", ".tsv", ".xlsx", ".xlsm", ".xls", ".parquet"}
MAX_TABLE_BYTES = 8 * 1024 * 1024  # larger is never a summary table: only streamed rules run
SNIFF_BYTES = 64 * 1024
MAX_SHEET_ROWS = 1_000_000  # a sheet is read whole: more rows (a small file can unzip huge) is row-level data
IDENTIFIER_NAMES = re.compile(r"(^|_)(id|ids|nir|ipp|patient|patient_id|person|stay_id|nom|name|prenom|email|"
                              r"address|adresse|phone|telephone|postcode|code_postal|zip)($|_)", re.I)
BIRTH_NAMES = re.compile(r"(birth|naissance|dob|date_nais)", re.I)
DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T].*)?$|^\d{2}/\d{2}/\d{4}$")


class Unreadable(ValueError):
    """The file is not a table the rules can read; the message (a ``Msg``) says what to do."""

    def __init__(self, message: Msg) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Grid:
    rows: list[list[str]]
    header_rows: int
    index_cols: int

    def body(self):
        """(row, col, text) of every value cell."""
        for r in range(self.header_rows, len(self.rows)):
            for c in range(self.index_cols, len(self.rows[r])):
                yield r, c, self.rows[r][c]

    def label(self, r: int) -> tuple[str, ...]:
        return tuple(self.rows[r][:self.index_cols])

    def column_name(self, c: int) -> tuple[str, ...]:
        return tuple(self.rows[h][c] if c < len(self.rows[h]) else "" for h in range(self.header_rows))


def number(text: str) -> float | None:
    """The cell as a number, or None (empty, NaN, text); accepts a French decimal comma."""
    text = text.strip().replace("\u202f", "").replace("\xa0", "")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        try:
            value = float(text.replace(",", "."))
        except ValueError:
            return None
    return None if math.isnan(value) or math.isinf(value) else value


# --- reading ------------------------------------------------------------------------------------

def read_grid(path: Path, name: str) -> Grid:
    """The table as a grid of strings with its header rows and label columns detected."""
    ext = Path(name).suffix.lower()
    if ext in (".csv", ".tsv"):
        rows = _csv_rows(path, "\t" if ext == ".tsv" else None)
    elif ext in (".xlsx", ".xlsm", ".xls", ".parquet"):
        rows = _binary_rows(path, ext)
    else:
        raise Unreadable(Msg("{name} is not a table (CSV, TSV, XLSX or Parquet).", name=name))
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise Unreadable(Msg("The file is empty: there is nothing to release."))
    return detect_layout(rows)


def _binary_rows(path: Path, ext: str) -> list[list[str]]:
    """An XLSX or Parquet file through its library; whatever a damaged file makes the library raise
    (a bad zip member, truncated thrift, broken XML: found by fuzzing) is a verdict, not a crash."""
    try:
        return _parquet_rows(path) if ext == ".parquet" else _excel_rows(path, ext)
    except Unreadable:
        raise
    except Exception as error:  # noqa: BLE001 - the libraries raise many kinds on damaged files
        kind = "Parquet" if ext == ".parquet" else "Excel (.xlsx)"
        raise Unreadable(Msg("This {kind} file is damaged and cannot be read ({error}: {detail}); write it again "
                             "from your analysis.", kind=kind, error=type(error).__name__, detail=str(error)[:200])) \
            from None


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) or refused: a mixed or unknown encoding would hide cells."""
    if b"\x00" in data[:SNIFF_BYTES]:
        raise Unreadable(Msg("This file is binary, not a text table; export the table as CSV (UTF-8)."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise Unreadable(Msg("This file is not valid UTF-8 (byte {byte}); save it as CSV UTF-8 and submit it "
                             "again.", byte=error.start)) from None


def _csv_rows(path: Path, delimiter: str | None) -> list[list[str]]:
    size = path.stat().st_size
    if size == 0:
        raise Unreadable(Msg("The file is empty: there is nothing to release."))
    if size > MAX_TABLE_BYTES:
        raise Unreadable(Msg("The file holds {size} bytes, far more than a summary table; it was treated as "
                             "row-level data.", size=size))
    text = decode(path.read_bytes())
    delimiter = delimiter or sniff_delimiter(text)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error as error:
        raise Unreadable(Msg("The CSV is malformed ({error}); check its quotes and export it again.",
                             error=str(error))) from None
    widths = {len(row) for row in rows if row}
    if len(widths) > 1:
        first = len(rows[0])
        line = next(n for n, row in enumerate(rows, 1) if row and len(row) != first)
        raise Unreadable(Msg("The CSV is malformed: line {line} has {fields} fields where the first line has "
                             "{first}; export the table again.", line=line, fields=len(rows[line - 1]), first=first))
    return rows


def sniff_delimiter(text: str) -> str:
    """The CSV's delimiter: a comma, or the semicolon French spreadsheets write, a tab, a bar."""
    try:
        return csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _excel_rows(path: Path, ext: str) -> list[list[str]]:
    """The first sheet's values; formulas and macros are refused (they hide or compute cells)."""
    if ext == ".xls":
        raise Unreadable(Msg("Old Excel (.xls) files are not accepted; save the table as .xlsx or CSV."))
    if not zipfile.is_zipfile(path):
        raise Unreadable(Msg("This is not a valid Excel (.xlsx) file; save it again as .xlsx or CSV."))
    size = path.stat().st_size
    if size > MAX_TABLE_BYTES:
        raise Unreadable(Msg("The file holds {size} bytes, far more than a summary table; it was treated as "
                             "row-level data.", size=size))
    with zipfile.ZipFile(path) as archive:
        if any(n.lower().endswith("vbaproject.bin") for n in archive.namelist()) or ext == ".xlsm":
            raise Unreadable(Msg("The workbook contains macros; save the table without macros (.xlsx or CSV)."))
    import openpyxl

    book = openpyxl.load_workbook(path, read_only=True, data_only=False)
    try:
        if len(book.worksheets) != 1:
            raise Unreadable(Msg("The workbook has {sheets} sheets; submit one table per file.",
                                 sheets=len(book.worksheets)))
        rows = []
        for r, row in enumerate(book.worksheets[0].iter_rows(values_only=True)):
            if r == MAX_SHEET_ROWS:
                raise Unreadable(Msg("The sheet holds more than {rows} rows, far more than a summary table; it was "
                                     "treated as row-level data.", rows=MAX_SHEET_ROWS))
            cells = []
            for c, value in enumerate(row):
                if isinstance(value, str) and value.startswith("="):
                    raise Unreadable(Msg("Cell {cell} holds a formula ({formula}); paste the values only and "
                                         "submit the file again.", cell=_excel_name(r, c), formula=value[:40]))
                cells.append("" if value is None else _text(value))
            rows.append(cells)
    finally:
        book.close()
    width = max((len(r) for r in rows), default=0)
    return [r + [""] * (width - len(r)) for r in rows]


def _excel_name(r: int, c: int) -> str:
    letters = ""
    c += 1
    while c:
        c, rest = divmod(c - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{r + 1}"


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


def _parquet_rows(path: Path) -> list[list[str]]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except Exception as error:  # noqa: BLE001 - a broken file is a verdict, not a crash
        raise Unreadable(Msg("This is not a valid Parquet file ({error}); write it again.", error=str(error))) from None
    if meta.num_rows > 1_000_000 or path.stat().st_size > MAX_TABLE_BYTES:
        raise Unreadable(Msg("The file holds {rows} rows, far more than a summary table; it was treated as "
                             "row-level data.", rows=meta.num_rows))
    frame = pq.read_table(path).to_pandas()
    header = [str(c) for c in frame.columns]
    body = [["" if v is None or (isinstance(v, float) and math.isnan(v)) else _text(v) for v in row]
            for row in frame.itertuples(index=False)]
    return [header, *body]


def detect_layout(rows: list[list[str]]) -> Grid:
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    if len(rows) == 1 or width == 1:
        return Grid(rows, 1 if len(rows) > 1 else 0, 0)
    header_rows = 1
    while header_rows < len(rows) - 1 and not any(cell.strip() for cell in rows[header_rows][1:]) \
            and rows[header_rows][0].strip():
        header_rows += 1
    index_cols = 1
    body = rows[header_rows:]
    while index_cols < width - 1 and all(number(r[index_cols]) is None for r in body):
        index_cols += 1
    return Grid(rows, header_rows, index_cols)


# --- rules --------------------------------------------------------------------------------------

def check_table(path: Path, context: CheckContext) -> list[CheckResult]:
    try:
        grid = read_grid(path, context.filename)
    except Unreadable as refused:
        return [result("table-format", FAIL, refused.message)]
    return rules_on_grid(grid, context)


def rules_on_grid(grid: Grid, context: CheckContext, *, in_notebook: bool = False) -> list[CheckResult]:
    results = [microdata(grid, context, in_notebook=in_notebook), formula_cells(grid.rows)]
    if results[0].status != FAIL:
        results += cell_rules(grid, context)
        results += [differencing(grid, context, earlier) for earlier in context.released]
    results = [r for r in results if r is not None]
    if context.identifiers is not None:
        results.append(identifier_cells(grid, context))
    for found in results:
        for cell in found.details.get("cells", ()):
            name_cell(grid, cell)
    return results


def name_cell(grid: Grid, cell: dict) -> None:
    """Add the cell's row label and column name, so that people read "Occitanie / 40-59, stays"
    rather than a pair of numbers; a header cell has no row label, a label cell no column name."""
    r, c = int(cell["row"]), int(cell["col"])
    if r >= grid.header_rows and r < len(grid.rows):
        cell["label"] = " / ".join(part for part in grid.label(r) if part.strip())
    if c >= grid.index_cols and grid.rows and c < len(grid.rows[0]):
        cell["column"] = " / ".join(part for part in grid.column_name(c) if part.strip())


def _count_columns(grid: Grid) -> tuple[set[int], set[int]]:
    """Value columns holding whole numbers only (counts) and the others (statistics)."""
    counts, stats = set(), set()
    for c in range(grid.index_cols, len(grid.rows[0])):
        values = [number(grid.rows[r][c]) for r in range(grid.header_rows, len(grid.rows))]
        values = [v for v in values if v is not None]
        if not values:
            continue
        (counts if all(v.is_integer() for v in values) else stats).add(c)
    return counts, stats


def cell_rules(grid: Grid, context: CheckContext) -> list[CheckResult]:
    """Threshold, zeros, negatives, rounding and statistics without counts, cell by cell."""
    p = context.params
    counts, stats = _count_columns(grid)
    small, zeros, negative, whole = [], [], [], []
    for r, c, text in grid.body():
        value = number(text)
        if value is None:
            continue
        cell = {"row": r, "col": c, "value": text}
        if value < 0:
            negative.append(cell)
        if c in counts:
            whole.append(value)
            if 0 < value < p.threshold:
                small.append(cell)
            elif value == 0 and p.zeros_are_disclosive:
                zeros.append(cell)
    out = [
        result("threshold", FAIL, Msg("{cells} cell(s) count fewer than {threshold}: suppress or merge them.",
                                      cells=len(small), threshold=p.threshold),
               cells=small, threshold=p.threshold) if small else
        result("threshold", PASS, Msg("Every count is {threshold} or more.", threshold=p.threshold) if counts else
               Msg("No column of counts was found."), threshold=p.threshold),
    ]
    if zeros:
        out.append(result("zeros", FAIL, Msg("{cells} cell(s) are zero; a zero discloses that nobody in the group "
                                             "has the attribute.", cells=len(zeros)), cells=zeros))
    if negative:
        out.append(result("negative", REVIEW, Msg("{cells} negative value(s): counts cannot be negative, so a "
                                                  "checker must see what these are.", cells=len(negative)),
                          cells=negative))
    names = {c: " / ".join(grid.column_name(c)) for c in counts | stats}
    statistics = statistics_result(names, stats, statistics_beside_counts(names, counts, stats), not small)
    if statistics is not None:
        out.append(statistics)
    if whole:
        base = next((b for b in (10, 5) if all(v % b == 0 for v in whole)), None)
        out.append(result("rounding", PASS, Msg("Every count is a multiple of {base}: the table looks rounded to "
                                                "{base}.", base=base) if base else Msg("The counts are not rounded."),
                          base=base))
    return out


def microdata(grid: Grid, context: CheckContext, *, in_notebook: bool = False) -> CheckResult:
    """Row-level data fails: many rows with identifier-like, date-of-birth, date or free-text columns."""
    p = context.params
    n = len(grid.rows) - grid.header_rows
    header = [" ".join(grid.column_name(c)).strip() for c in range(len(grid.rows[0]))]
    signals: list[Msg] = []
    for c, name in enumerate(header):
        values = [grid.rows[r][c] for r in range(grid.header_rows, len(grid.rows)) if grid.rows[r][c].strip()]
        if IDENTIFIER_NAMES.search(name.replace(" ", "_")):
            signals.append(Msg("column “{name}” looks like an identifier", name=name))
        elif BIRTH_NAMES.search(name):
            signals.append(Msg("column “{name}” looks like a date of birth", name=name))
        elif values and sum(bool(DATE_VALUE.match(v)) for v in values) > 0.8 * len(values) \
                and len(set(values)) > 0.5 * len(values) and len(values) >= 20:
            signals.append(Msg("column “{name}” holds many exact dates", name=name))
        elif values and c >= grid.index_cols and sum(len(v) for v in values) / len(values) > 40 \
                and all(number(v) is None for v in values):
            signals.append(Msg("column “{name}” holds free text", name=name))
    enough_rows = n >= (1 if in_notebook else p.microdata_min_rows)
    if n > p.microdata_max_rows or (signals and enough_rows):
        why = signals or Msg("{rows} rows", rows=n)
        return result("microdata", FAIL, Msg("This looks like row-level data ({rows} rows; {why}); release only "
                                             "aggregated tables.", rows=n, why=why),
                      rows=n, signals=[str(s) for s in signals])
    return result("microdata", PASS, Msg("{rows} rows: looks like a summary table.", rows=n), rows=n,
                  signals=[str(s) for s in signals])


def differencing(grid: Grid, context: CheckContext, earlier: Released) -> CheckResult | None:
    """A cell that differs from the same cell of an earlier release by fewer than the threshold."""
    try:
        old = read_grid(earlier.path, earlier.name)
    except Unreadable:
        return None
    p = context.params
    new_counts, _ = _count_columns(grid)
    old_counts, _ = _count_columns(old)
    old_cells = {(old.label(r), old.column_name(c)): number(old.rows[r][c])
                 for r in range(old.header_rows, len(old.rows)) for c in old_counts}
    cells = []
    for r in range(grid.header_rows, len(grid.rows)):
        for c in new_counts:
            before = old_cells.get((grid.label(r), grid.column_name(c)))
            now = number(grid.rows[r][c])
            if before is not None and now is not None and 0 < abs(now - before) < p.threshold:
                cells.append({"row": r, "col": c, "value": grid.rows[r][c], "earlier": _text(before)})
    if not cells:
        return None
    return result("differencing", FAIL, Msg("With {earlier}, released earlier, {cells} cell(s) differ by fewer "
                                            "than {threshold}: subtracting the two tables discloses a small group.",
                                            earlier=earlier.label, cells=len(cells), threshold=p.threshold),
                  cells=cells, earlier=str(earlier.label))


def identifier_cells(grid: Grid, context: CheckContext) -> CheckResult:
    """Any cell (headers included) equal to an identifying value of the project's datasets fails."""
    assert context.identifiers is not None
    cells = [{"row": r, "col": c, "value": text} for r, row in enumerate(grid.rows) for c, text in enumerate(row)]
    hits = context.identifiers.contains([cell["value"] for cell in cells])
    found = [cell for cell, hit in zip(cells, hits) if hit]
    if found:
        return result("identifier-leak", FAIL, Msg("{cells} cell(s) hold identifying values of the project's "
                                                   "datasets (patient ids, exact dates, postcodes...): remove them.",
                                                   cells=len(found)), cells=found)
    return result("identifier-leak", PASS, Msg("No identifying value of the project's datasets was found."))
