"""``tre check`` in a notebook: the egress review's rules on output files, shown as each table
with its flagged cells highlighted (as the checkers will see them), in the workspace's language.

    from egress_review.checks.notebook import check
    check("outputs/table.csv")      # a cell's last value: shown as a table, red where a rule fails

The report's text form (``print(check(...))``) is the command's; ``.outcome`` is pass, review or
fail, so a notebook can stop before a file is added to an export request.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from egress_review.checks import FAIL, REVIEW, CheckContext, outcome
from egress_review.checks.cli import STATUS_WORDS, check_paths, render
from egress_review.checks.i18n import Msg, language_of, said
from egress_review.checks.identifiers import IdentifierIndex
from egress_review.checks.tables import Unreadable, read_grid

MAX_ROWS = 200  # rows of a table shown; flagged cells further down are still listed by their rule
COLOURS = {FAIL: "#f8d7da", REVIEW: "#fff3cd"}
BADGE = {"pass": "#198754", REVIEW: "#997404", FAIL: "#dc3545"}


class Report:
    """The results of ``check``: each file's rules, shown in a notebook as HTML."""

    def __init__(self, results: dict[str, list[dict[str, Any]]], language: str) -> None:
        self.results = results
        self.language = language

    @property
    def outcome(self) -> str:
        return outcome([{"status": outcome(found)} for found in self.results.values()])

    def __str__(self) -> str:
        return render(self.results, False, self.language)[0]

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return "".join(self._file_html(path, found) for path, found in self.results.items())

    def _word(self, status: str) -> str:
        return STATUS_WORDS[status].said_in(self.language)

    def _file_html(self, path: str, found: list[dict[str, Any]]) -> str:
        status = outcome(found)
        parts = [f'<div class="tre-check" data-outcome="{status}" style="margin-bottom:1em">',
                 f'<p><code>{escape(path)}</code> <span style="background:{BADGE[status]};color:#fff;'
                 f'border-radius:4px;padding:0 6px;font-weight:600">{escape(self._word(status).upper())}</span></p>']
        problems = [r for r in found if r["status"] != "pass"]
        if problems:
            parts.append("<ul>")
            for r in problems:
                parts.append(f'<li data-rule="{escape(r["rule"])}"><strong>{escape(r["rule"])}</strong> '
                             f'[{escape(self._word(r["status"]))}]: {escape(said(r, self.language))}</li>')
            parts.append("</ul>")
        parts.append(self._table_html(Path(path), found))
        parts.append("</div>")
        return "".join(parts)

    def _table_html(self, path: Path, found: list[dict[str, Any]]) -> str:
        """The table, its flagged cells coloured by the worst rule behind them (none for a non-table)."""
        try:
            grid = read_grid(path, path.name)
        except (Unreadable, OSError, ValueError):
            return ""
        flagged: dict[tuple[int, int], tuple[str, list[str]]] = {}
        for r in found:
            if r["status"] not in COLOURS:
                continue
            for cell in (r.get("details") or {}).get("cells") or []:
                key = (cell["row"], cell["col"])
                worst, rules = flagged.get(key, ("pass", []))
                flagged[key] = (r["status"] if r["status"] == FAIL or worst == "pass" else worst, rules + [r["rule"]])
        rows = []
        for i, row in enumerate(grid.rows[:MAX_ROWS]):
            cells = []
            for j, text in enumerate(row):
                tag = "th" if i < grid.header_rows or j < grid.index_cols else "td"
                mark = flagged.get((i, j))
                style = (f' style="background:{COLOURS[mark[0]]};font-weight:600" data-flagged="{mark[0]}"'
                         f' title="{escape(", ".join(mark[1]))}"') if mark else ""
                cells.append(f"<{tag}{style}>{escape(text)}</{tag}>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        more = len(grid.rows) - MAX_ROWS
        tail = (f"<p><em>{escape(Msg('… {count} more rows.', count=more).said_in(self.language))}</em></p>"
                if more > 0 else "")
        return f'<table class="tre-check-table">{"".join(rows)}</table>{tail}'


def check(*paths: str | Path, language: str | None = None, index: str | Path | None = None) -> Report:
    """Check output files with the egress review's rules. ``language``: ``en`` or ``fr`` (default:
    the workspace's); ``index``: an identifier index (.arrow) to scan for identifier leaks."""
    chosen = [Path(p) for p in paths]
    identifiers = IdentifierIndex.load(Path(index)) if index else None
    return Report(check_paths(chosen, CheckContext("", identifiers=identifiers)), language_of(language))
