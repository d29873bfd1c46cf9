"""One fuzzing harness per file type the checks parse, with a small valid seed for each.

A harness writes the fuzzer's bytes to a file of its type and runs the checks' own entry point for
that file (``files.check_file``, which dispatches to the table, notebook, figure and ACRO readers)
without ``run_checks``' safety net, so an exception escaping a reader is a crash the fuzzer reports
(in service it would have become a vague "engine" review). Images also go through the metadata
stripper that runs on every released PNG and JPEG.
"""

from __future__ import annotations

import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path


def _check(data: bytes, name: str) -> None:
    from egress_review.checks import CheckContext
    from egress_review.checks.files import check_file

    with tempfile.TemporaryDirectory(prefix="tre-fuzz-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        check_file(path, CheckContext(name))


def _xlsx_seed() -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in (["region", "n", "rate"], ["11", 40, 0.5], ["24", 3, 0.25]):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _parquet_seed() -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(pa.table({"region": ["11", "24"], "n": [40, 3], "mean": [1.5, 2.5]}), out)
    return out.getvalue()


def _notebook_seed() -> bytes:
    table = "<table><tr><th></th><th>n</th></tr><tr><th>11</th><td>4</td></tr><tr><th>24</th><td>40</td></tr></table>"
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "source": "df", "metadata": {}, "execution_count": 1, "outputs": [
            {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": {"text/html": table, "text/plain": "region n\n11 4", "image/png": "iVBORw0KGgo="}}]}]}).encode()


def _png_seed() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"tEXt", b"Author\x00alice") + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def _jpeg_seed() -> bytes:
    return (b"\xff\xd8" + b"\xff\xe1\x00\x10Exif\x00\x00alice...." + b"\xff\xfe\x00\x07hello"
            + b"\xff\xdb\x00\x43\x00" + bytes(64) + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x12\x34\xff\xd9")


def _acro_seed() -> bytes:
    return json.dumps({"version": "1.0.2", "results": {"output_0": {
        "uid": "output_0", "status": "fail", "type": "table", "properties": {"method": "crosstab"},
        "sdc": {"summary": {"suppressed": False, "negative": 0, "missing": 0, "threshold": 2, "p-ratio": 0,
                            "nk-rule": 0, "all-values-are-same": 0},
                "cells": {"negative": [], "missing": [], "threshold": [[0, 1], [2, 0]], "p-ratio": [],
                          "nk-rule": [], "all-values-are-same": []}},
        "command": "acro.crosstab(df.a, df.b)", "summary": "fail; threshold: 2 cells may need suppressing;",
        "outcome": {"F": {"1": "threshold; ", "2": "ok"}}, "output": ["output_0.csv"],
        "timestamp": "2026-01-01T00:00:00", "comments": [], "exception": ""}}}).encode()


def _image(data: bytes, name: str) -> None:
    from egress_review.checks.strip import stripped

    stripped(data, name)
    _check(data, name)


# name -> (harness, seed inputs)
HARNESSES: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "csv": (lambda d: _check(d, "table.csv"),
            lambda: [b"region,n,rate\n11,40,0.5\n24,3,=HYPERLINK(\"x\")\n", b"sex;1;2\nregion;;\n11;5;12\n"]),
    "tsv": (lambda d: _check(d, "table.tsv"), lambda: [b"region\tmean_age\n11\t45,2\n24\t-\n"]),
    "xlsx": (lambda d: _check(d, "table.xlsx"), lambda: [_xlsx_seed()]),
    "parquet": (lambda d: _check(d, "table.parquet"), lambda: [_parquet_seed()]),
    "notebook": (lambda d: _check(d, "analysis.ipynb"), lambda: [_notebook_seed()]),
    "svg": (lambda d: _check(d, "figure.svg"),
            lambda: [b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>']),
    "pdf": (lambda d: _check(d, "figure.pdf"),
            lambda: [b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"]),
    "png": (lambda d: _image(d, "figure.png"), lambda: [_png_seed()]),
    "jpeg": (lambda d: _image(d, "figure.jpg"), lambda: [_jpeg_seed()]),
    "acro": (lambda d: _check(d, "results.json"), lambda: [_acro_seed()]),
}
