"""The pure part of an extraction: from a grant spec and a dataset version's manifest, the units of
work (one per granted table partition) and the DuckDB SQL of each, with no I/O.

Every person key is replaced by the project pseudonym through one table, ``people (db_key,
person_id)``: the distinct people the grant selects, without those on the opt-out register, each
pseudonymised once. Partitions are joined to it, so a person outside it (objected, not selected by
the criteria, outside the period) is in no output row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from datasets.grant_spec import (PSEUDONYM, GrantSpec, event_date_column, linkage_key, person_key_of, schema_of)
from datasets.manifest import table_of


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: object) -> str:
    """A SQL literal of a value grant_spec checked: a code, a number or a date."""
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{value!r} cannot be a criterion's value")
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def files_sql(paths: list[str]) -> str:
    return "read_parquet([" + ", ".join(literal(p) for p in paths) + "])"


@dataclass(frozen=True)
class Table:
    name: str  # in the manifest ("." for a one-table dataset)
    columns: tuple[str, ...]  # granted, in the manifest's order
    schema: dict[str, str]
    person_key: str | None  # holds the person key itself
    study_key: str | None  # or a study identifier the linkage table maps to the person key
    event_date: str | None  # the period's column


@dataclass(frozen=True)
class Unit:
    """One partition of one granted table: read these files, write ``output``."""
    table: Table
    partition: str  # "year=2022/month=01", or "" for an unpartitioned table
    sources: tuple[str, ...]
    output: str  # relative to the extract's folder

    @property
    def name(self) -> str:
        return self.output


@dataclass(frozen=True)
class Plan:
    tables: tuple[Table, ...]
    units: tuple[Unit, ...]
    linkage_sources: tuple[str, ...]
    linkage_person_key: str | None
    spec: GrantSpec
    criteria_tables: tuple[Table, ...]  # the tables criteria read (granted or not)
    sources: dict[str, tuple[str, ...]]  # table -> its files the period leaves (granted and criteria tables)


def _overlaps(partition: tuple[str, ...], period: tuple[dt.date, dt.date] | None) -> bool:
    """Whether a ``year=YYYY`` (``/month=MM``) partition can hold rows of the period; the others are
    not read at all."""
    if period is None:
        return True
    keys = dict(part.partition("=")[::2] for part in partition)
    if not keys.get("year", "").isdigit():
        return True
    year = int(keys["year"])
    if keys.get("month", "").isdigit() and 1 <= int(keys["month"]) <= 12:
        month = int(keys["month"])
        first = dt.date(year, month, 1)
        last = dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
    else:
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    return first <= period[1] and period[0] <= last


def _table(tables_info: dict[str, Any], name: str, columns: tuple[str, ...], spec: GrantSpec,
           link_key: str | None) -> Table:
    schema = schema_of(tables_info, name)
    person = person_key_of(schema)
    return Table(name, columns, schema, person, None if person else (link_key if link_key in schema else None),
                 event_date_column(schema) if spec.period else None)


def make_plan(spec: GrantSpec, tables_info: dict[str, Any], files: list[list], folder: str) -> Plan:
    """The units of work of ``spec`` over a version whose files (manifest rows) are in ``folder``."""
    link_key = linkage_key(tables_info, spec.linkage) if spec.linkage else None
    tables = tuple(_table(tables_info, name, columns, spec, link_key) for name, columns in sorted(spec.tables.items()))
    wanted = set(spec.tables) | {c["table"] for c in spec.criteria}
    by_table: dict[str, dict[str, list[str]]] = {}
    linkage_sources = []
    for row in files:
        path = row[0]
        if not path.endswith(".parquet"):
            continue
        table, partition = table_of(path)
        if table == spec.linkage:
            linkage_sources.append(f"{folder}/{path}")
        elif table in wanted and _overlaps(partition, spec.period):
            by_table.setdefault(table, {}).setdefault("/".join(partition), []).append(f"{folder}/{path}")
    units = []
    for table in tables:
        for partition, sources in sorted(by_table.get(table.name, {}).items()):
            where = "/".join(p for p in (("" if table.name == "." else table.name), partition) if p)
            units.append(Unit(table, partition, tuple(sorted(sources)), f"{where}/part-0.parquet".lstrip("/")))
    criteria_tables = tuple(_table(tables_info, name, (), spec, link_key) for name in sorted({c["table"] for c in spec.criteria}))
    sources = {name: tuple(sorted(s for part in parts.values() for s in part)) for name, parts in by_table.items()}
    linkage_person = person_key_of(schema_of(tables_info, spec.linkage)) if spec.linkage else None
    return Plan(tables, tuple(units), tuple(sorted(linkage_sources)), linkage_person, spec, criteria_tables, sources)


def period_filter(table: Table, spec: GrantSpec, alias: str = "t") -> str:
    if spec.period is None or table.event_date is None:
        return "TRUE"
    return (f"{alias}.{q(table.event_date)} BETWEEN {literal(spec.period[0])} AND {literal(spec.period[1])}")


def criterion_sql(criterion: dict, alias: str = "t") -> str:
    column, op, value = f"{alias}.{q(criterion['column'])}", criterion["op"], criterion["value"]
    if op == "in":
        return f"{column} IN ({', '.join(literal(v) for v in value)})"
    if op == "not_in":
        return f"{column} NOT IN ({', '.join(literal(v) for v in value)})"
    if op == "prefix":
        return "(" + " OR ".join(f"starts_with({column}::VARCHAR, {literal(v)})" for v in value) + ")"
    if op == "between":
        return f"{column} BETWEEN {literal(value[0])} AND {literal(value[1])}"
    return f"{column} {op} {literal(value)}"


def keys_of(plan: Plan, table: Table, sources: list[str], condition: str = "TRUE") -> str:
    """SELECT of the distinct database person keys (``db_key``) of a table's rows meeting ``condition``."""
    where = f"({period_filter(table, plan.spec)}) AND ({condition})"
    if table.person_key:
        return f"SELECT DISTINCT t.{q(table.person_key)}::VARCHAR AS db_key FROM {files_sql(sources)} t WHERE {where}"
    if table.study_key:
        return (f"SELECT DISTINCT l.{q(plan.linkage_person_key)}::VARCHAR AS db_key FROM {files_sql(sources)} t "
                f"JOIN linkage l ON t.{q(table.study_key)} = l.{q(table.study_key)} WHERE {where}")
    return ""


def people_sql(plan: Plan) -> str:
    """CREATE the ``people`` table: every person the grant selects, minus opt-outs, pseudonymised once."""
    from extracts.pseudonyms import pseudonym_sql

    selected = [keys_of(plan, t, list(plan.sources.get(t.name, ()))) for t in plan.tables if plan.sources.get(t.name)]
    selected = [s for s in selected if s]
    if not selected:
        return f"CREATE TABLE people (db_key VARCHAR, {PSEUDONYM} BIGINT)"
    body = " UNION ".join(f"({s})" for s in selected)
    for criterion in plan.spec.criteria:
        table = next(t for t in plan.criteria_tables if t.name == criterion["table"])
        sources = list(plan.sources.get(table.name, ()))
        chosen = keys_of(plan, table, sources, criterion_sql(criterion)) if sources else ""
        body = f"({body}) INTERSECT ({chosen or 'SELECT NULL::VARCHAR AS db_key WHERE FALSE'})"
    return (f"CREATE TABLE people AS SELECT s.db_key, {pseudonym_sql('s.db_key')} AS {PSEUDONYM} "
            f"FROM ({body}) s, hk WHERE s.db_key NOT IN (SELECT person_key FROM optouts)")


def unit_sql(plan: Plan, unit: Unit) -> str:
    """SELECT of one partition's output rows: the pseudonym first, then the granted columns."""
    table = unit.table
    columns = [c for c in table.columns if c != table.person_key]
    chosen = ", ".join(f"t.{q(c)}" for c in columns)
    where = period_filter(table, plan.spec)
    source = files_sql(list(unit.sources))
    if table.person_key:
        return (f"SELECT m.{PSEUDONYM}{', ' + chosen if chosen else ''} FROM {source} t "
                f"JOIN people m ON t.{q(table.person_key)}::VARCHAR = m.db_key WHERE {where}")
    if table.study_key:
        return (f"SELECT m.{PSEUDONYM}{', ' + chosen if chosen else ''} FROM {source} t "
                f"JOIN linkage l ON t.{q(table.study_key)} = l.{q(table.study_key)} "
                f"JOIN people m ON l.{q(plan.linkage_person_key)}::VARCHAR = m.db_key WHERE {where}")
    return f"SELECT {chosen} FROM {source} t WHERE {where}"
