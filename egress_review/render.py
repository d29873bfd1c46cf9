"""How a frozen file is shown to a checker, and how a CSV they download is made harmless.

Tables become HTML tables (escaped by the templates), images are shown inline, notebooks are
rendered by nbconvert with its HTML sanitiser and served only inside a sandboxed frame, other text
is shown escaped; everything else is a download. A CSV cell that starts with ``=``, ``+``, ``-``
or ``@`` is a formula to a spreadsheet, so the copy a checker downloads has it prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from egress_review.checks.tables import sniff_delimiter

TABLES = {".csv": ",", ".tsv": "\t"}
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
TEXTS = {".txt", ".md", ".py", ".r", ".do", ".sas", ".sql", ".log", ".json", ".yaml", ".yml", ".html", ".htm",
         ".tex", ".ipynb"}
MAX_ROWS = 500
MAX_TEXT = 200_000
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A notebook's rendering runs nothing and reaches nothing: no script, no network, no same origin.
SANDBOX_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def suffix(name: str) -> str:
    return Path(name).suffix.lower()


def view_kind(name: str) -> str:
    """table, image, notebook, text or download."""
    ext = suffix(name)
    if ext in TABLES:
        return "table"
    if ext in IMAGES:
        return "image"
    if ext == ".ipynb":
        return "notebook"
    return "text" if ext in TEXTS else "download"


def table_rows(path: Path, name: str) -> tuple[list[list[str]], bool]:
    """The first rows of a table (and whether there were more); cells are escaped when rendered."""
    delimiter = TABLES[suffix(name)]
    if delimiter == ",":  # the delimiter the automatic checks read, so highlighted cells line up
        with path.open(encoding="utf-8", errors="replace") as stream:
            delimiter = sniff_delimiter(stream.read(64 * 1024))
    with path.open(newline="", encoding="utf-8", errors="replace") as stream:
        rows = []
        for number, row in enumerate(csv.reader(stream, delimiter=delimiter)):
            if number >= MAX_ROWS:
                return rows, True
            rows.append(row)
    return rows, False


def text_of(path: Path) -> tuple[str, bool]:
    with path.open(encoding="utf-8", errors="replace") as stream:
        text = stream.read(MAX_TEXT + 1)
    return text[:MAX_TEXT], len(text) > MAX_TEXT


def notebook_html(path: Path) -> str:
    """The notebook as HTML with nbconvert's sanitiser on (scripts and active content removed)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(sanitize_html=True, embed_images=True, exclude_input_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    return body


def neutralise_csv(data: bytes, delimiter: str = ",") -> bytes:
    """The same table with every formula-like cell prefixed by ``'``, so spreadsheets show it as text."""
    source = io.StringIO(data.decode("utf-8", errors="replace"), newline="")
    target = io.StringIO(newline="")
    writer = csv.writer(target, delimiter=delimiter, lineterminator="\n")
    for row in csv.reader(source, delimiter=delimiter):
        writer.writerow(["'" + cell if cell.startswith(FORMULA_STARTS) else cell for cell in row])
    return target.getvalue().encode()
