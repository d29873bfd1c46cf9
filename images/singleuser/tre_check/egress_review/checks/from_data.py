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


def _grouped(keys: list[pd.Series]) -> tuple[pd.Index, pd.Index, np.ndarray, np.ndarray, int, int]:
    """Row and column labels (sorted, as crosstab shows them) and each row's cell coordinates."""
    row_codes, row_labels = pd.factorize(keys[0], sort=True)
    col_codes, col_labels = pd.factorize(keys[1], sort=True)
    keep = (row_codes >= 0) & (col_codes >= 0)
    return row_labels, col_labels, row_codes[keep], col_codes[keep], len(row_labels), len(col_labels)


def crosstab(index: pd.Series, columns: pd.Series, params: Params = Params()) -> TableCheck:
    """The frequency table of two variables with its threshold and zero cells flagged."""
    rows, cols, r, c, nr, nc = _grouped([index, columns])
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
    rows, cols, r, c, nr, nc = _grouped([data[index], data[columns]])
    keep = data[index].notna().to_numpy() & data[columns].notna().to_numpy()
    amount = data[values].to_numpy(dtype=float)[keep]
    cell = r * nc + c
    present = ~np.isnan(amount)
    cell, amount = cell[present], amount[present]
    size = nr * nc
    count = np.bincount(cell, minlength=size).astype(float)
    total = np.bincount(cell, weights=amount, minlength=size)
    negative = np.bincount(cell, weights=(amount < 0).astype(float), minlength=size)
    # The N largest contributions per cell: sort by (cell, amount descending) once, take the first N.
    order = np.lexsort((-amount, cell))
    sorted_cell, sorted_amount = cell[order], amount[order]
    starts = np.searchsorted(sorted_cell, np.arange(size))
    rank = np.arange(sorted_cell.size) - starts[sorted_cell]
    top1 = np.bincount(sorted_cell[rank == 0], weights=sorted_amount[rank == 0], minlength=size)
    top2 = np.bincount(sorted_cell[rank < 2], weights=sorted_amount[rank < 2], minlength=size)
    top_n = np.bincount(sorted_cell[rank < params.nk_n], weights=sorted_amount[rank < params.nk_n], minlength=size)
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
    elif negative.sum() > 0:
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
