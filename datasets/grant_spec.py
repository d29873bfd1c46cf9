"""What a grant gives exactly: tables and columns, an optional period, optional cohort criteria and,
for a cohort keyed by its own study identifier, the linkage table that leads to the person key.

A spec is declarative (YAML in the catalogue file, form fields on the steward's page) and is
checked against the schemas of the dataset version's manifest (``DatasetVersion.tables``); no
person ever types SQL. The extraction engine (``extracts.build``) turns a spec into DuckDB queries
with literals it quotes itself, after this module has checked their types.

Rules kept here, so that the steward's page, the catalogue loader and the engine agree:

- the person key (``patient_id`` and the SNDS names for it) is never handed out: every table that
  holds it gets the project's pseudonym ``person_id`` instead, granted or not;
- the period applies to each granted table's *event date*: its first date column that is not a
  date of birth or of death (``care_date``, ``admission_date``, ``inclusion_date``); a table without
  one (the beneficiaries' referential) is not cut by the period;
- a criterion keeps the people with at least one row of its table (in the period) that matches it;
  several criteria must all hold;
- direct identifiers and dates of birth are granted only with a justification, recorded with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tre_core.i18n import Message

# The person key under the names the SNDS gives it; replaced by the project pseudonym in extracts.
PERSON_KEYS = frozenset({"patient_id", "ben_nir_psa", "nir_ano_17", "ben_idt_ano"})
PSEUDONYM = "person_id"
# Direct identifiers other than the person key, when the catalogue does not tag its columns.
DIRECT_IDENTIFIERS = frozenset({"stay_id", "study_id", "nir", "name", "nom", "prenom", "first_name",
                                "last_name", "address", "adresse", "phone", "email"})
BIRTH = re.compile(r"birth|naissance|(^|_)dob($|_)|nais_", re.I)
NOT_EVENT_DATE = re.compile(r"birth|naissance|death|deces|dcd", re.I)
OPERATORS = ("in", "not_in", "prefix", "between", "=", "!=", "<", "<=", ">", ">=")
LIST_OPERATORS = frozenset({"in", "not_in", "prefix", "between"})
# Values in criteria: short codes, numbers and dates only (they become SQL literals).
SAFE_TEXT = re.compile(r"^[\w .:/+-]{1,64}$")
SPEC_KEYS = frozenset({"tables", "columns", "period", "criteria", "linkage", "justification"})


class SpecError(ValueError):
    """A spec that cannot be granted: ``message`` (English and French) says what and how to fix it,
    ``field`` which part of the spec (``tables``, ``period``, ``criteria``, ``linkage``, ``justification``)."""

    def __init__(self, message: Message, field: str) -> None:
        self.message, self.field = message, field
        super().__init__(str(message))

    def said_in(self, language: str) -> str:
        return self.message.said_in(language)


def _refuse(field_name: str, msgid: str, **params: object) -> SpecError:
    return SpecError(Message(msgid, **params), field_name)


@dataclass(frozen=True)
class GrantSpec:
    tables: dict[str, tuple[str, ...]]  # table of the manifest ("." for a one-table dataset) -> columns
    period: tuple[dt.date, dt.date] | None = None
    criteria: tuple[dict, ...] = ()
    linkage: str | None = None  # the linkage table (study id -> person key) of a cohort dataset
    justification: str | None = None

    def to_json(self) -> dict:
        return {"tables": {t: list(c) for t, c in sorted(self.tables.items())},
                "period": [self.period[0].isoformat(), self.period[1].isoformat()] if self.period else None,
                "criteria": [_criterion_json(c) for c in self.criteria], "linkage": self.linkage,
                "justification": self.justification}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GrantSpec:
        period = d.get("period")
        return cls(tables={t: tuple(c) for t, c in d["tables"].items()},
                   period=(dt.date.fromisoformat(period[0]), dt.date.fromisoformat(period[1])) if period else None,
                   criteria=tuple(_criterion_from_json(c) for c in d.get("criteria") or ()),
                   linkage=d.get("linkage"), justification=d.get("justification"))

    def digest(self) -> str:
        body = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    def describe(self) -> dict:
        """What the public register and the pages show: the variables, the period, how many criteria."""
        return {"variables": [c if t == "." else f"{t}.{c}" for t, cols in sorted(self.tables.items()) for c in cols],
                "period": f"{self.period[0].isoformat()} – {self.period[1].isoformat()}" if self.period else None,
                "criteria": len(self.criteria)}


def _criterion_json(c: dict) -> dict:
    value = c["value"]
    shown = [_json_value(v) for v in value] if isinstance(value, (list, tuple)) else _json_value(value)
    return {"table": c["table"], "column": c["column"], "op": c["op"], "value": shown}


def _json_value(v: object) -> object:
    return {"date": v.isoformat()} if isinstance(v, dt.date) else v


def _criterion_from_json(c: Mapping[str, Any]) -> dict:
    def back(v):
        return dt.date.fromisoformat(v["date"]) if isinstance(v, dict) else v

    value = c["value"]
    return {"table": c["table"], "column": c["column"], "op": c["op"],
            "value": tuple(back(v) for v in value) if isinstance(value, list) else back(value)}


# --- what the manifest says about columns ----------------------------------------------------


def schema_of(manifest_schema: Mapping[str, Any], table: str) -> dict[str, str]:
    return {name: kind for name, kind in manifest_schema[table]["schema"]}


def kind_of(arrow_type: str) -> str:
    """``text``, ``number``, ``date`` or ``other`` from the Arrow type the manifest recorded."""
    t = arrow_type.lower()
    if t.startswith("date") or t.startswith("timestamp"):
        return "date"
    if t.startswith("dictionary"):
        return "text" if "values=string" in t or "values=large_string" in t else "other"
    if t in ("string", "large_string", "utf8", "large_utf8"):
        return "text"
    if re.match(r"^(u?int\d+|float|double|halffloat|decimal)", t):
        return "number"
    return "other"


def event_date_column(columns: Mapping[str, str]) -> str | None:
    """The column the period applies to: the first date that is not a birth or a death."""
    for name, kind in columns.items():
        if kind_of(kind) == "date" and not NOT_EVENT_DATE.search(name):
            return name
    return None


def person_key_of(columns: Mapping[str, str]) -> str | None:
    return next((name for name in columns if name.lower() in PERSON_KEYS), None)


def needs_justification(column: str, tags: Mapping[str, str | None] | None = None) -> bool:
    """Direct identifiers (other than the person key, which is always pseudonymised) and dates of birth."""
    if column.lower() in PERSON_KEYS:
        return False
    if BIRTH.search(column):
        return True
    if tags is not None and column in tags:
        return tags[column] == "direct"
    return column.lower() in DIRECT_IDENTIFIERS


def linkage_key(manifest_schema: Mapping[str, Any], linkage: str) -> str | None:
    """The study identifier a linkage table maps to the person key: its one other column."""
    columns = schema_of(manifest_schema, linkage)
    others = [c for c in columns if c.lower() not in PERSON_KEYS]
    return others[0] if person_key_of(columns) and len(others) == 1 else None


# --- parsing ---------------------------------------------------------------------------------


def whole_dataset(manifest_schema: Mapping[str, Any]) -> GrantSpec:
    """A grant recorded before specs existed gives every table and column; a cohort's linkage table
    is used for linkage rather than handed out."""
    linkage = next((t for t in sorted(manifest_schema) if t.rsplit("/", 1)[-1] == "linkage"
                    and linkage_key(manifest_schema, t)), None)
    tables = {t: tuple(name for name, _ in info["schema"]) for t, info in sorted(manifest_schema.items()) if t != linkage}
    return GrantSpec(tables=tables, linkage=linkage)


def parse_spec(data: Mapping[str, Any], manifest_schema: Mapping[str, Any],
               column_tags: Mapping[str, str | None] | None = None) -> GrantSpec:
    """Check a spec written by a person (YAML or form) against the manifest's schemas and return it
    in its one canonical form; raise ``SpecError`` at the first problem, naming what to change.

    ``column_tags`` maps column names to the catalogue's ``identifier`` tag (``direct``/``indirect``)
    when the dataset has them; without it, well-known names are used."""
    if not isinstance(data, Mapping):
        raise _refuse("tables", "A grant's spec is a mapping with tables (or columns), and optionally period, "
                      "criteria, linkage and justification.")
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise _refuse("tables", "The spec has unknown entries {names}; use tables (or columns), period, criteria, "
                      "linkage and justification.", names=", ".join(unknown))
    tables = _tables(data, manifest_schema)
    linkage = _linkage(data.get("linkage"), manifest_schema, tables)
    period = _period(data.get("period"), manifest_schema, tables)
    criteria = tuple(_criterion(i, c, manifest_schema, tables, linkage)
                     for i, c in enumerate(_as_list(data.get("criteria"), "criteria")))
    justification = data.get("justification")
    if justification is not None and not isinstance(justification, str):
        raise _refuse("justification", "The justification is a sentence of text.")
    justification = (justification or "").strip() or None
    sensitive = [c if t == "." else f"{t}.{c}" for t, cols in tables.items() for c in cols
                 if needs_justification(c, column_tags)]
    if sensitive and not justification:
        raise _refuse("justification", "{columns} are direct identifiers or dates of birth: they are granted only "
                      "with a justification; give one, or leave these columns out.", columns=", ".join(sensitive))
    return GrantSpec(tables=tables, period=period, criteria=criteria, linkage=linkage, justification=justification)


def _as_list(value: object, name: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _refuse(name, "{name} is a list.", name=name)
    return value


def _tables(data: Mapping[str, Any], manifest_schema: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    known = ", ".join(sorted(manifest_schema)) or "none"
    if "columns" in data:  # the short form for a dataset of one table
        if "tables" in data or list(manifest_schema) != ["."]:
            raise _refuse("tables", "Give columns alone only for a dataset of one table; this one has tables "
                          "{tables}: list them under tables.", tables=known)
        raw = {".": data["columns"]}
    else:
        raw = data.get("tables")
    if not isinstance(raw, Mapping) or not raw:
        raise _refuse("tables", "Name at least one table and its columns (tables: {{table: [columns]}}); this "
                      "dataset's tables are {tables}.", tables=known)
    tables: dict[str, tuple[str, ...]] = {}
    for table, columns in raw.items():
        table = str(table)
        if table not in manifest_schema:
            raise _refuse("tables", "The dataset has no table {table}; its tables are {tables}.", table=table,
                          tables=known)
        schema = schema_of(manifest_schema, table)
        if columns in ("*", ["*"]):
            columns = list(schema)
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            raise _refuse("tables", "List the columns granted of table {table} (or * for all).", table=table)
        missing = [c for c in columns if c not in schema]
        if missing:
            raise _refuse("tables", "Table {table} has no column {columns}; its columns are {known}.", table=table,
                          columns=", ".join(missing), known=", ".join(schema))
        tables[table] = tuple(c for c in schema if c in set(columns))  # the manifest's order, once each
    return dict(sorted(tables.items()))


def _linkage(value: object, manifest_schema: Mapping[str, Any], tables: dict[str, tuple[str, ...]]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in manifest_schema:
        raise _refuse("linkage", "The linkage names a table of the dataset ({tables}).",
                      tables=", ".join(sorted(manifest_schema)))
    key = linkage_key(manifest_schema, value)
    if key is None:
        raise _refuse("linkage", "Table {table} is not a linkage table: it should hold the person key and one "
                      "study identifier.", table=value)
    if value in tables:
        raise _refuse("linkage", "The linkage table {table} is used to link, not handed out: remove it from "
                      "tables.", table=value)
    if not any(key in schema_of(manifest_schema, t) for t in tables):
        raise _refuse("linkage", "No granted table holds the study identifier {key} that {table} links.",
                      key=key, table=value)
    return value


def _date(value: object, field_name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise _refuse(field_name, "{value} is not a date; write it as YYYY-MM-DD.", value=value) from None


def _period(value: object, manifest_schema: Mapping[str, Any],
            tables: dict[str, tuple[str, ...]]) -> tuple[dt.date, dt.date] | None:
    if value is None:
        return None
    if isinstance(value, Mapping) and set(value) == {"from", "until"}:
        start, end = value["from"], value["until"]
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        start, end = value
    else:
        raise _refuse("period", "A period is {{from: YYYY-MM-DD, until: YYYY-MM-DD}}.")
    start, end = _date(start, "period"), _date(end, "period")
    if end < start:
        raise _refuse("period", "The period ends ({end}) before it starts ({start}).", start=start, end=end)
    if not any(event_date_column(schema_of(manifest_schema, t)) for t in tables):
        raise _refuse("period", "No granted table has a date to apply the period to; leave the period out.")
    return start, end


def _criterion(index: int, raw: object, manifest_schema: Mapping[str, Any],
               tables: dict[str, tuple[str, ...]], linkage: str | None) -> dict:
    where = index + 1
    if not isinstance(raw, Mapping):
        raise _refuse("criteria", "Criterion {n} is not of the form {{table, column, op, value}}.", n=where)
    raw = dict(raw)
    for op in OPERATORS:  # the short form {table, column, in: [...]}
        if op in raw and "op" not in raw:
            raw["op"], raw["value"] = op, raw.pop(op)
    if set(raw) != {"table", "column", "op", "value"}:
        raise _refuse("criteria", "Criterion {n} is not of the form {{table, column, op, value}}.", n=where)
    table, column, op, value = str(raw["table"]), raw["column"], raw["op"], raw["value"]
    if table not in manifest_schema or table == linkage:
        raise _refuse("criteria", "Criterion {n} names table {table}, which the dataset does not have (its tables "
                      "are {tables}).", n=where, table=table, tables=", ".join(sorted(manifest_schema)))
    schema = schema_of(manifest_schema, table)
    if column not in schema:
        raise _refuse("criteria", "Criterion {n}: table {table} has no column {column}.", n=where, table=table,
                      column=column)
    if not person_key_of(schema) and not (linkage and linkage_key(manifest_schema, linkage) in schema):
        raise _refuse("criteria", "Criterion {n}: table {table} does not say which person a row is about, so it "
                      "cannot select people.", n=where, table=table)
    if op not in OPERATORS:
        raise _refuse("criteria", "Criterion {n}: unknown operator {op}; use one of {ops}.", n=where, op=op,
                      ops=", ".join(OPERATORS))
    kind = kind_of(schema[column])
    values = value if isinstance(value, list) else [value]
    if op in LIST_OPERATORS:
        if not isinstance(value, list) or not value or (op == "between" and len(value) != 2):
            raise _refuse("criteria", "Criterion {n}: {op} takes a list of values (between: two).", n=where, op=op)
    elif isinstance(value, list):
        raise _refuse("criteria", "Criterion {n}: {op} takes one value, not a list.", n=where, op=op)
    if op == "prefix" and kind != "text":
        raise _refuse("criteria", "Criterion {n}: prefix applies to codes (text), and {column} is not text.",
                      n=where, column=column)
    checked = tuple(_value(where, column, kind, v) for v in values)
    return {"table": table, "column": column, "op": op, "value": checked if op in LIST_OPERATORS else checked[0]}


def _value(where: int, column: str, kind: str, value: object) -> object:
    if kind == "date":
        return _date(value, "criteria")
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if kind == "text" and isinstance(value, str) and SAFE_TEXT.match(value):
        return value
    raise _refuse("criteria", "Criterion {n}: {value} does not fit column {column} ({kind}); give codes of "
                  "letters and digits, numbers or dates as the column holds.", n=where, value=str(value),
                  column=column, kind=kind)
