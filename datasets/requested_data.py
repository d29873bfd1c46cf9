"""What an application asks of each dataset: the variables (tables and columns) and the period,
checked against the schemas of the dataset version's manifest by ``grant_spec.parse_spec``.

An application records its request as ``Project.requested_specs`` ({dataset: GrantSpec JSON}); a
steward may amend it before approving, and the approval grants exactly it. The request is checked
when it is made, when it is amended, and again against the version actually granted at approval
(a newer version may have dropped a column): a request that no longer fits is refused with the
reason, and nothing is granted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from datasets.grant_spec import GrantSpec, SpecError, parse_spec, whole_dataset
from datasets.models import Dataset, DatasetVersion


@dataclass(frozen=True)
class DatasetSchema:
    """One dataset version's tables as a request is checked against them."""

    slug: str
    version: str
    tables: dict[str, Any]  # DatasetVersion.tables: {table: {"schema": [[name, type]], ...}}
    tags: dict[str, str | None]  # column name -> "direct" / "indirect" / None, from the catalogue

    @property
    def linkage(self) -> str | None:
        """The cohort's linkage table (study id -> person key), used to link and never handed out."""
        return whole_dataset(self.tables).linkage if self.tables else None


def schema_of(session: Session, slug: str, version: str | None = None) -> DatasetSchema | None:
    """The schema of a dataset's version (by default its newest), or None if it has none registered."""
    dataset = session.get(Dataset, slug)
    if dataset is None:
        return None
    registered = session.get(DatasetVersion, (slug, version or dataset.version))
    if registered is None:
        return None
    return DatasetSchema(slug=slug, version=registered.version, tables=dict(registered.tables or {}),
                         tags={c["name"]: c.get("identifier") for c in dataset.columns or []})


def request_data(spec: GrantSpec) -> dict[str, Any]:
    """A parsed spec written back as ``parse_spec`` reads it, to check it again against another version."""
    return {
        "tables": {t: list(c) for t, c in spec.tables.items()},
        "period": {"from": spec.period[0], "until": spec.period[1]} if spec.period else None,
        "criteria": [{**c, "value": list(c["value"]) if isinstance(c["value"], tuple) else c["value"]}
                     for c in spec.criteria],
        "linkage": spec.linkage,
        "justification": spec.justification,
    }


def check(data: Mapping[str, Any], schema: DatasetSchema) -> GrantSpec:
    """The request for one dataset in its canonical form; ``SpecError`` says what to change."""
    return parse_spec(data, schema.tables, schema.tags or None)


def described(specs: Mapping[str, Any] | None) -> dict[str, dict]:
    """{dataset: GrantSpec.describe()} of a recorded request, for the audit row and the pages."""
    return {slug: GrantSpec.from_json(spec).describe() for slug, spec in sorted((specs or {}).items())}
