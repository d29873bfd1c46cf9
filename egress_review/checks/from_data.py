"""Tables built and checked from the raw rows: the entry point when the contributions are known.

A CSV of means says nothing of who contributed to each cell; the rows behind it do. ``crosstab``
and ``pivot_table`` build the same tables as pandas (and as ACRO's wrappers) and flag their cells
with ACRO's rules: a cell with fewer than ``threshold`` rows (zero included), a zero count when
zeros are disclosive, the N-K dominance rule (the N largest contributions make at least K of the
cell's total) and the p-ratio (what remains once the two largest are removed is less than p of
the largest). Negative contributions make dominance undefined: those cells go to review, as in
ACRO. Every statistic is one grouped pandas pass over the rows: no per-cell Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from egress_review.checks.params import Params

Cell = tuple[int, int]


@dataclass
class TableCheck:
    """A table and, per rule, the (row, column) positions it flags, in ACRO's order of cells."""

    table: pd.DataFrame
    flags: dict[str, list[Cell]] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if any(self.flags.get(r) for r in ("threshold", "zeros", "nk-rule", "p-ratio")):
            return "fail"
        return "review" if self.flags.get("negative") else "pass"

    def flagged(self) -> set[Cell]:
        return {cell for cells in self.flags.values() for cell in cells}


def _cells(mask: pd.DataFrame) -> list[Cell]:
    rows, cols = np.nonzero(mask.to_numpy(dtype=bool))
    return sorted(zip(rows.tolist(), cols.tolist()))


def _grouped(keys: list[pd.Series]) -> tuple[pd.Index, pd.Index, np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Row and column labels (sorted, as crosstab shows them), which rows have both keys, and
    those rows' cell coordinates (factorize already marks a missing key: no second null pass)."""
    row_codes, row_labels = pd.factorize(keys[0], sort=True)
    col_codes, col_labels = pd.factorize(keys[1], sort=True)
    keep = (row_codes >= 0) & (col_codes >= 0)
    return (row_labels, col_labels, keep, row_codes[keep], col_codes[keep], len(row_labels), len(col_labels))


def _largest_sums(cell: np.ndarray, amount: np.ndarray, size: int, n: int) -> list[np.ndarray]:
    """Per cell, the sum of its 1, 2, ... ``n`` largest contributions (fewer when it has fewer).

    ``n`` passes of a grouped maximum (``np.maximum.at``, linear) in place of sorting every row
    by (cell, amount): the sort was nine tenths of the check's time on a million rows. Each pass
    takes the cell's largest remaining contribution and removes one row holding it (the first),
    so equal contributions count as many times as they occur, as in a sort. The amounts are not
    negative here (a negative contribution sends the table to review before this runs).
    """
    remaining = amount.copy()
    sums, running = [], np.zeros(size)
    for _ in range(n):
        best = np.full(size, -np.inf)
        np.maximum.at(best, cell, remaining)
        present = best > -np.inf  # the cell still has a contribution
        running = running + np.where(present, best, 0.0)
        sums.append(running)
        holders = np.flatnonzero(remaining == best[cell])
        first = np.full(size, len(remaining))
        np.minimum.at(first, cell[holders], holders)
        remaining[first[first < len(remaining)]] = -np.inf
    return sums


def crosstab(index: pd.Series, columns: pd.Series, params: Params = Params()) -> TableCheck:
    """The frequency table of two variables with its threshold and zero cells flagged."""
    rows, cols, _, r, c, nr, nc = _grouped([index, columns])
    counts = np.bincount(r * nc + c, minlength=nr * nc).reshape(nr, nc)
    table = pd.DataFrame(counts, index=rows.rename(index.name), columns=cols.rename(columns.name))
    flags = {"threshold": _cells(pd.DataFrame(counts < params.threshold))}
    if params.zeros_are_disclosive:
        flags["zeros"] = _cells(pd.DataFrame(counts == 0))
    return TableCheck(table, flags)


def pivot_table(data: pd.DataFrame, index: str, columns: str, values: str, aggfunc: str | list[str] = "mean",
                params: Params = Params()) -> TableCheck:
    """``pandas.pivot_table`` of one value with the threshold, N-K, p-ratio and negative cells flagged.

    The flags are per cell of one statistic's table (row, column); with several statistics they
    hold for each, as ACRO reports them.
    """
    aggs = [aggfunc] if isinstance(aggfunc, str) else list(aggfunc)
    rows, cols, keep, r, c, nr, nc = _grouped([data[index], data[columns]])
    amount = data[values].to_numpy(dtype=float)[keep]
    cell = r * nc + c
    present = ~np.isnan(amount)
    if not present.all():
        cell, amount = cell[present], amount[present]
    size = nr * nc
    count = np.bincount(cell, minlength=size).astype(float)
    total = np.bincount(cell, weights=amount, minlength=size)
    below = amount < 0
    negative = np.bincount(cell[below], minlength=size) if below.any() else np.zeros(size)
    dominance = aggs != ["count"] and not negative.any()
    if dominance:  # N-K and p-ratio: only when they are reported (no count table, no negative)
        sums = _largest_sums(cell, amount, size, max(params.nk_n, 2))
        top1, top2, top_n = sums[0], sums[1], sums[params.nk_n - 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            nk = np.where(total != 0, top_n / total, np.nan) >= params.nk_k
            remainder = total - top2
            p = np.where(top1 == 0, remainder, remainder / np.where(top1 == 0, np.nan, top1))
            p = np.where(np.isnan(p), 1.0, p) < params.p_ratio
    shape = (nr, nc)
    flags: dict[str, list[Cell]] = {"threshold": _cells(pd.DataFrame((count < params.threshold).reshape(shape)))}
    if aggs == ["count"]:  # a table of counts: ACRO checks its threshold and zeros, as for a crosstab
        if params.zeros_are_disclosive:
            flags["zeros"] = _cells(pd.DataFrame((count == 0).reshape(shape)))
    elif not dominance:
        flags["negative"] = _cells(pd.DataFrame((negative > 0).reshape(shape)))
    else:
        flags["nk-rule"] = _cells(pd.DataFrame((nk & (count > 0)).reshape(shape)))
        flags["p-ratio"] = _cells(pd.DataFrame((p & (count > 0)).reshape(shape)))
    stats = {"mean": lambda: np.where(count > 0, total / np.where(count > 0, count, 1), np.nan),
             "sum": lambda: np.where(count > 0, total, np.nan),
             "count": lambda: np.where(count > 0, count, np.nan)}  # as pandas: an empty cell is NaN
    frames = []
    for name in aggs:
        if name not in stats:
            raise ValueError(f"aggfunc {name!r} is not supported; use mean, sum or count.")
        frames.append(pd.DataFrame(stats[name]().reshape(shape), index=rows.rename(index),
                                   columns=cols.rename(columns)))
    table = frames[0] if len(frames) == 1 else pd.concat(frames, axis=1, keys=aggs)
    return TableCheck(table, flags)
