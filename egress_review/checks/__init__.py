"""Automatic disclosure checks: every rule run on every frozen file before a human looks.

``run_checks(path, context)`` picks the rules by the file's type (tables, notebooks, figures,
models, text; archives and unknown types are refused) and returns their results, which are stored
with the file and shown to the checkers with the failing cells highlighted. A file's outcome is
the worst of its results: ``fail`` over ``review`` over ``pass``.

This package imports nothing from ``datasets``, ``spawner`` or the service (pure Python, numpy,
pandas, pyarrow, openpyxl), so the same code runs in the singleuser image as ``tre check``.
A rule never raises on bad input: ``run_checks`` turns any crash into a ``review`` result that
says so, so a request is never stuck and never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egress_review.checks.i18n import Msg
from egress_review.checks.params import Params

if TYPE_CHECKING:
    from egress_review.checks.identifiers import IdentifierIndex

PASS, REVIEW, FAIL = "pass", "review", "fail"
_RANK = {PASS: 0, REVIEW: 1, FAIL: 2}
MAX_CELLS = 500  # evidence kept per result; the summary gives the full count


@dataclass(frozen=True)
class Released:
    """A table the project released earlier, for the differencing rule."""

    label: str  # what the checker is told, e.g. "request 12, counts.csv" (a Msg, to be said in French too)
    path: Path
    name: str


@dataclass(frozen=True)
class CheckContext:
    """What a rule may know about the file besides its content."""

    filename: str
    kind: str = "output"  # output or supporting
    group_context: str = ""
    group_controls: str = ""
    params: Params = field(default_factory=Params)
    identifiers: IdentifierIndex | None = None
    released: tuple[Released, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One rule's verdict on one file, in ACRO's vocabulary (pass, review, fail).

    ``details["cells"]`` lists the cells behind the verdict as ``{"row", "col", "value"}`` in the
    file's own grid (row 0 is the file's first line), so the review page highlights them.
    ``summary`` is the English sentence; ``message`` the same, language-neutral (msgid and
    parameters, see ``i18n``), so that pages and ``tre check`` say it in their reader's language.
    """

    rule: str
    status: str
    summary: str
    details: dict[str, Any]
    message: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def result(rule: str, status: str, summary: Msg, **details: Any) -> CheckResult:
    """A rule's verdict; its summary is a ``Msg`` so that it can be said in French too."""
    cells = details.get("cells")
    if cells is not None and len(cells) > MAX_CELLS:
        details["cells"], details["cells_total"] = cells[:MAX_CELLS], len(cells)
    message = summary.stored() if isinstance(summary, Msg) else None
    return CheckResult(rule, status, str(summary), details, message)


def outcome(results: list[dict[str, Any]] | list[CheckResult]) -> str:
    """The file's outcome: the worst status among its results (pass when there is none)."""
    statuses = [r["status"] if isinstance(r, dict) else r.status for r in results]
    return max(statuses, key=_RANK.__getitem__, default=PASS)


# Each rule's id and what it checks, in words a checker understands (shown on the review page).
DESCRIPTIONS: dict[str, str] = {
    "threshold": "Minimum cell count: every count must be at least the threshold (10 by default).",
    "zeros": "Zeros: a zero count discloses that nobody in the group has the attribute.",
    "negative": "Negative values: counts cannot be negative; a checker must see what they are.",
    "statistics": "Statistics without counts: means or sums whose number of contributors is unknown.",
    "formula": "Formulas: cells a spreadsheet would run (starting with =, @, + or - followed by text).",
    "rounding": "Rounding: whether every count is a multiple of 5 or 10.",
    "microdata": "Row-level data: many rows with identifiers, dates of birth, exact dates or free text.",
    "differencing": "Differencing: subtracting this table from one released earlier reveals a small group.",
    "identifier-leak": "Identifier leak: a value of an identifying column of the project's datasets.",
    "table-format": "Table format: the file must be a readable table (UTF-8 CSV, XLSX without formulas or macros, "
                    "Parquet).",
    "file-type": "File type: archives and unknown types are refused.",
    "notebook": "Notebook: every output is checked; invalid notebooks are refused.",
    "notebook-images": "Notebook images: images in outputs go to human review.",
    "figure": "Figure: human review; SVG or PDF with scripts is refused.",
    "model": "Model: never loaded by the service; human review.",
    "text": "Text: read by a checker.",
    "acro": "ACRO: the verdicts of ACRO's own checks (results.json).",
    "parameters": "Parameters: the project's overrides of the rules' parameters.",
    "engine": "Engine: a check that could not read the file.",
}

Rule = Callable[[Path, CheckContext], list[CheckResult]]
RULES: list[Rule] = []


def register(rule: Rule) -> Rule:
    """Add a rule that runs on every file after the built-in ones (kept for extensions)."""
    RULES.append(rule)
    return rule


def run_checks(path: Path, context: CheckContext) -> list[CheckResult]:
    """Every applicable rule on one file; a rule that crashes becomes a ``review`` result."""
    from egress_review.checks import files

    results: list[CheckResult] = []
    for rule in (files.check_file, *RULES):
        try:
            results.extend(rule(path, context))
        except Exception as crash:  # noqa: BLE001 - bad input must give a verdict, never a 500
            results.append(result("engine", REVIEW, Msg("An automatic check could not read this file ({error}: "
                                                         "{detail}); a checker must look at it.",
                                                         error=type(crash).__name__, detail=str(crash)),
                                  error=type(crash).__name__))
    return results
