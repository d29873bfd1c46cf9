"""The columns of a dataset version and their identifier tags, kept across versions (SATRE 3.1.03).

The egress review's identifier-leak check reads which columns are direct or indirect identifiers
from the catalogue (``Dataset.columns``). A new version registered with ``tre datasets add`` must
not lose them, so its columns are read from the Parquet schema and each column's tag comes from,
in this order:

1. the command line (``--tag name=direct|indirect|none``);
2. the Parquet field's key-value metadata (``tre.identifier``, and ``tre.description``), which a
   data provider can set when writing the file;
3. the previous version's entry for a column of the same name.

A column that is new and tagged by none of them is kept untagged (not an identifier) and named in
a warning, so the steward tags it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

IDENTIFIER_KEY = b"tre.identifier"
DESCRIPTION_KEY = b"tre.description"
TAGS = {"direct": "direct", "indirect": "indirect", "none": None}


class ColumnTagError(ValueError):
    """A tag that cannot be applied; the message says what to write instead."""


@dataclass(frozen=True)
class VersionColumns:
    columns: list[dict[str, Any]]
    untagged_new: list[str]  # new in this version, tagged by nothing
    carried: list[str]  # tags taken from the previous version


def catalogue_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        return "category"
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "decimal"
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return "date"
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    return str(kind)


def parse_tags(given: Iterable[str]) -> dict[str, str | None]:
    """``name=direct|indirect|none`` from the command line."""
    tags: dict[str, str | None] = {}
    for item in given:
        name, _, tag = item.partition("=")
        if not name or tag not in TAGS:
            raise ColumnTagError(f"--tag {item!r}: write COLUMN=direct, COLUMN=indirect or COLUMN=none.")
        tags[name] = TAGS[tag]
    return tags


def _schema(files: Iterable[Path]) -> list[pa.Field]:
    """The fields of the version's Parquet files, in first-seen order (files may add columns)."""
    fields: dict[str, pa.Field] = {}
    for path in files:
        for field in pq.read_schema(path):
            fields.setdefault(field.name, field)
    return list(fields.values())


def _metadata_tag(field: pa.Field) -> tuple[bool, str | None]:
    value = (field.metadata or {}).get(IDENTIFIER_KEY)
    if value is None:
        return False, None
    tag = value.decode().strip().lower()
    if tag not in TAGS:
        raise ColumnTagError(f"Column {field.name}'s Parquet metadata tre.identifier={tag!r} is not direct, "
                             "indirect or none; correct the file or give --tag.")
    return True, TAGS[tag]


def columns_for_version(parquet_files: Iterable[Path], previous: list[dict[str, Any]] | None,
                        given: Mapping[str, str | None] | None = None) -> VersionColumns:
    """The catalogue's column list for a new version, with tags carried forward (module docstring)."""
    given = dict(given or {})
    before = {c["name"]: c for c in previous or []}
    fields = _schema(parquet_files)
    unknown = sorted(set(given) - {f.name for f in fields})
    if unknown:
        raise ColumnTagError(f"--tag names {', '.join(unknown)}, which the version's Parquet files do not have.")
    columns, untagged, carried = [], [], []
    for field in fields:
        old = before.get(field.name, {})
        in_file, file_tag = _metadata_tag(field)
        if field.name in given:
            tag = given[field.name]
        elif in_file:
            tag = file_tag
        elif field.name in before:
            tag = old.get("identifier")
            carried.append(field.name)
        else:
            tag = None
            untagged.append(field.name)
        description = (field.metadata or {}).get(DESCRIPTION_KEY, b"").decode() or old.get("description", "")
        columns.append({"name": field.name, "type": old.get("type") or catalogue_type(field.type),
                        "description": description, "identifier": tag})
    return VersionColumns(columns, untagged, carried)


def untagged_warning(slug: str, version: str, names: list[str]) -> str:
    return (f"Warning: {', '.join(names)} {'is' if len(names) == 1 else 'are'} new in {slug} {version} and tagged "
            "neither on the command line nor in the Parquet metadata, so the identifier-leak check treats "
            f"{'it' if len(names) == 1 else 'them'} as not identifying. If that is wrong, register the version "
            "again under a new version name with --tag COLUMN=direct or --tag COLUMN=indirect.")
