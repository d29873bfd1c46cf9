"""Which rules a file gets, by its type: tables, notebooks, figures, models, text; the rest refused.

Tables get the table rules; notebooks have each output checked (HTML tables as tables, text
scanned for identifiers, images to human review); figures go to human review, and an SVG or PDF
that carries scripts fails; models are never loaded (pickle runs code) and go to human review;
archives and unknown types are refused with the list of what is accepted.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

from egress_review.checks import FAIL, PASS, REVIEW, CheckContext, CheckResult, result
from egress_review.checks import acro_results, tables
from egress_review.checks.i18n import Msg
from egress_review.checks.identifiers import scan_result

FIGURES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf"}
MODELS = {".pkl", ".pickle", ".joblib", ".onnx", ".pt", ".pth", ".h5", ".keras", ".sav", ".rds", ".safetensors"}
ARCHIVES = {".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".zst"}
TEXTS = {".txt", ".md", ".log", ".py", ".r", ".do", ".sas", ".sql", ".tex", ".json", ".yaml", ".yml", ".html", ".htm"}
ACCEPTED = Msg("tables (CSV, TSV, XLSX, Parquet), notebooks (.ipynb), figures (PNG, JPEG, GIF, SVG, PDF), "
               "models (pickle, joblib, ONNX...) and text (TXT, Markdown, code, logs)")
ACTIVE_SVG = re.compile(rb"<script|\son[a-z]+\s*=|javascript:|<foreignObject", re.I)
ACTIVE_PDF = re.compile(rb"/JavaScript|/JS\s*[(<]|/Launch|/EmbeddedFile|/RichMedia|/XFA", re.I)
NOTEBOOK_MAX = 64 * 1024 * 1024


def check_file(path: Path, context: CheckContext) -> list[CheckResult]:
    ext = Path(context.filename).suffix.lower()
    if path.stat().st_size == 0:
        return [result("file-type", FAIL, Msg("The file is empty: there is nothing to release."))]
    if ext in tables.TABLE_SUFFIXES:
        found = tables.check_table(path, context)
        if context.identifiers is not None and not any(r.rule == "identifier-leak" for r in found) \
                and ext in (".csv", ".tsv"):
            found.append(scan_result(context.identifiers, path))  # too large to read as a table: streamed
        return found
    if ext == ".ipynb":
        return check_notebook(path, context)
    if ext in FIGURES:
        return [check_figure(path, ext)]
    if ext in MODELS:
        return [result("model", REVIEW, Msg("A model file is never loaded by the service (it could run code); a "
                                            "checker must review it. Checks for model attacks come later."))]
    if ext in ARCHIVES:
        return [result("file-type", FAIL, Msg("Archives are refused: submit the files themselves. Accepted: "
                                              "{accepted}.", accepted=ACCEPTED))]
    if Path(context.filename).name == "results.json" or ext in TEXTS:
        out = [result("text", REVIEW, Msg("Text: a checker must read it."))]
        if Path(context.filename).name == "results.json":
            out = acro_results.check_results_json(path, context)
        if context.identifiers is not None:
            out.append(scan_result(context.identifiers, path))
        return out
    if not ext:
        return [result("file-type", FAIL, Msg("Files without a type (no extension) are not accepted. Accepted: "
                                              "{accepted}.", accepted=ACCEPTED))]
    return [result("file-type", FAIL, Msg("Files of type “{ext}” are not accepted. Accepted: {accepted}.",
                                          ext=ext, accepted=ACCEPTED))]


def check_figure(path: Path, ext: str) -> CheckResult:
    if ext in (".svg", ".pdf"):
        with path.open("rb") as stream:
            data = stream.read(32 * 1024 * 1024)
        if (ACTIVE_SVG if ext == ".svg" else ACTIVE_PDF).search(data):
            return result("figure", FAIL, Msg("The {kind} contains scripts or active content; export the figure "
                                              "again as a plain image.", kind=ext[1:].upper()))
    return result("figure", REVIEW, Msg("Figures go to human review: check that no point, label or small group "
                                        "identifies anyone. Metadata (EXIF, text) is stripped from released PNG and "
                                        "JPEG files."))


class _Tables(HTMLParser):
    """The tables of an HTML output as grids of strings (pandas' ``_repr_html_``)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1].append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def check_notebook(path: Path, context: CheckContext) -> list[CheckResult]:
    if path.stat().st_size > NOTEBOOK_MAX:
        return [result("notebook", FAIL, Msg("The notebook is larger than 64 MB: it almost surely holds raw data; "
                                             "clear its outputs and export summaries."))]
    try:
        notebook = json.loads(path.read_bytes().decode("utf-8"))
        cells = notebook["cells"]
        assert isinstance(cells, list)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AssertionError) as error:
        return [result("notebook", FAIL, Msg("This is not a valid notebook ({error}); save it again from Jupyter.",
                                             error=type(error).__name__))]
    out: list[CheckResult] = []
    images = 0
    for number, cell in enumerate(cells):
        for output in cell.get("outputs", []) if isinstance(cell, dict) else []:
            data = output.get("data", {}) if isinstance(output, dict) else {}
            texts = [_joined(output.get("text", ""))] + [_joined(data.get("text/plain", ""))]
            if any(k.startswith("image/") for k in data):
                images += 1
            html = _joined(data.get("text/html", ""))
            if html:
                parser = _Tables()
                parser.feed(html)
                for grid in parser.tables:
                    rows = [r for r in grid if any(c.strip() for c in r)]
                    if rows:
                        for found in tables.rules_on_grid(tables.detect_layout(rows), context, in_notebook=True):
                            if found.status != PASS:
                                out.append(result(found.rule, found.status,
                                                  Msg("Cell {cell}: {finding}", cell=number + 1,
                                                      finding=_message_of(found)), notebook_cell=number + 1))
                texts.append(html)
            if context.identifiers is not None:
                leaked = context.identifiers.scan_text("\n".join(texts))
                if leaked:
                    out.append(result("identifier-leak", FAIL, Msg("Cell {cell}: its output shows {values} identifying "
                                                                   "value(s) of the project's datasets; clear it.",
                                                                   cell=number + 1, values=len(leaked)),
                                      notebook_cell=number + 1, values=leaked[:50]))
    if images:
        out.append(result("notebook-images", REVIEW, Msg("{images} image output(s): a checker must look at them.",
                                                         images=images)))
    if not any(r.status == FAIL for r in out):
        out.append(result("notebook", PASS if not out else REVIEW, Msg("Every output was checked.")))
    return out


def _message_of(found: CheckResult) -> dict | str:
    """A result's summary, language-neutral (to nest it in another message), or its English text."""
    return found.summary if found.message is None else found.message


def _joined(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")
