"""What the workspace's server may hand the browser as a file's content, decided from the file's
bytes and its name together (pure functions, no Jupyter import, unit-tested on the host).

JupyterLab renders notebooks, text and a few image formats; nothing else needs its bytes in the
browser. A file is served only when its name AND its first bytes agree that it is one of those: a
Parquet file renamed ``x.csv`` starts with ``PAR1`` and is refused, a CSV renamed ``x.parquet`` is
refused by its name. Everything else (Parquet, archives, databases, pickles, any other binary)
leaves the enclave only through the egress review.
"""

from __future__ import annotations

import enum
import os
from pathlib import PurePosixPath

DEFAULT_READ_MAX_BYTES = 5 * 1024 * 1024
SNIFF_BYTES = 8192


class FileKind(enum.StrEnum):
    NOTEBOOK = "notebook"
    TEXT = "text"
    IMAGE = "image"
    DATA = "data"  # a binary the interface does not render: refused


# Formats that hold data in bulk, whatever their first bytes say (a gzip stream of CSV is text
# after decompression, a pickle may be protocol 0 and look like text).
DATA_EXTENSIONS = frozenset({
    "parquet", "parq", "pq", "arrow", "feather", "ipc", "orc", "avro",
    "zip", "gz", "tgz", "tar", "bz2", "xz", "zst", "7z", "rar", "lz4", "lzma", "z",
    "sqlite", "sqlite3", "db", "duckdb", "mdb", "accdb", "dbf",
    "pkl", "pickle", "joblib", "npy", "npz", "h5", "hdf5", "hdf", "nc", "mat", "rds", "rdata", "rda",
    "sas7bdat", "xpt", "dta", "sav", "xls", "xlsx", "xlsm", "ods", "pdf", "docx", "odt", "bin", "dat",
})
IMAGE_EXTENSIONS = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
                    "webp": "image/webp", "bmp": "image/bmp"}
# Magic numbers of containers and serialised data: refused even under a text or image name.
DATA_MAGIC = (
    b"PAR1", b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00",
    b"7z\xbc\xaf\x27\x1c", b"\x28\xb5\x2f\xfd", b"Rar!", b"SQLite format 3\x00", b"ARROW1", b"\x89HDF",
    b"\x93NUMPY", b"ORC", b"Obj\x01", b"\x04\x22\x4d\x18", b"%PDF", b"\xd0\xcf\x11\xe0",
    b"RDX2", b"RDX3", b"X\n", b"CDF\x01", b"CDF\x02",
)


def _image_matches(extension: str, head: bytes) -> bool:
    return {
        "png": head.startswith(b"\x89PNG\r\n\x1a\n"),
        "jpg": head.startswith(b"\xff\xd8\xff"), "jpeg": head.startswith(b"\xff\xd8\xff"),
        "gif": head.startswith((b"GIF87a", b"GIF89a")),
        "webp": head[:4] == b"RIFF" and head[8:12] == b"WEBP",
        "bmp": head.startswith(b"BM"),
    }.get(extension, False)


def _looks_like_data(head: bytes) -> bool:
    if head.startswith(DATA_MAGIC) or head[257:262] == b"ustar":
        return True
    # a pickle of protocol 2 and up starts with PROTO (0x80) and its version
    return len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # a multi-byte character cut by the sniff window is still text
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def classify(path: str, head: bytes) -> FileKind:
    """The kind of ``path`` from its name and its first bytes (``SNIFF_BYTES`` of them)."""
    extension = PurePosixPath(path).suffix.lower().lstrip(".")
    if extension in DATA_EXTENSIONS or _looks_like_data(head):
        return FileKind.DATA
    if extension in IMAGE_EXTENSIONS:
        return FileKind.IMAGE if _image_matches(extension, head) else FileKind.DATA
    if not _is_text(head):
        return FileKind.DATA
    return FileKind.NOTEBOOK if extension == "ipynb" else FileKind.TEXT


def image_mimetype(path: str) -> str:
    return IMAGE_EXTENSIONS[PurePosixPath(path).suffix.lower().lstrip(".")]


def read_max_bytes() -> int:
    """The installation's limit on one file's content in the browser (TRE_READ_MAX_BYTES, set by the
    hub from its settings); a value that is not a positive number falls back to the default."""
    try:
        value = int(os.environ.get("TRE_READ_MAX_BYTES", ""))
    except ValueError:
        return DEFAULT_READ_MAX_BYTES
    return value if value > 0 else DEFAULT_READ_MAX_BYTES


def negotiate(accept_language: str | None) -> str:
    """The first of en and fr that the browser asks for, by its q-values (the hub's own rule)."""
    choices = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        try:
            quality = float(params.strip()[2:]) if params.strip().startswith("q=") else 1.0
        except ValueError:
            quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in ("en", "fr") and quality > 0:
            choices.append((-quality, position, primary))
    return min(choices)[2] if choices else "en"
