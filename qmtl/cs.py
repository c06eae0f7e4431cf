"""Cross-sectional operators: functions of an expression across the symbols of the universe
at each bar time (``from qmtl import cs``).

At each bar time the *cross-section* is the set of the strategy's traded symbols that have a
bar at that time **and** a finite value there: a symbol without a bar at that time, or whose
value is NaN (warm-up, a division by zero), is left out of that time's cross-section and gets
NaN (a NaN weight means 0.0). Context symbols (``context = [...]``) are never part of it.

Time-series operators can be applied to the results (``cs.rank(x).ema(10)``): they run over
each symbol's own bars, as everywhere else.

>>> from qmtl.core.expr import col
>>> mom = col("close").pct_change(5)
>>> book = scale(demean(rank(mom)))          # a market-neutral momentum book
>>> book.op, book.inputs[0].op, book.inputs[0].inputs[0].op
('cs_scale', 'cs_demean', 'cs_rank')
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

from qmtl.core.expr import Expr, as_expr
from qmtl.core.expr_operators import Number

__all__ = ["bottom", "demean", "groups_from_csv", "neutralize", "rank", "scale", "top",
           "zscore"]


def rank(x: Expr | Number) -> Expr:
    """Percentile rank across symbols, ties averaged, scaled to [0, 1] as
    ``(rank - 1) / (n - 1)``; 0.5 when only one symbol is in the cross-section.

    >>> from qmtl.core.expr import col
    >>> rank(col("close")).op
    'cs_rank'
    """
    return Expr("cs_rank", as_expr(x))


def zscore(x: Expr | Number) -> Expr:
    """``(x - mean) / std`` across symbols (population std); NaN where the std is 0.

    >>> from qmtl.core.expr import col
    >>> zscore(col("close")).op
    'cs_zscore'
    """
    return Expr("cs_zscore", as_expr(x))


def demean(x: Expr | Number) -> Expr:
    """``x`` minus its mean across symbols.

    >>> from qmtl.core.expr import col
    >>> demean(col("close")).op
    'cs_demean'
    """
    return Expr("cs_demean", as_expr(x))


def scale(x: Expr | Number, gross: float = 1.0) -> Expr:
    """``x / sum|x| * gross`` across symbols: weights whose absolute values add up to
    ``gross``; 0.0 where ``sum|x|`` is 0.

    >>> from qmtl.core.expr import col
    >>> scale(col("close"), gross=2).params
    {'gross': 2.0}
    >>> scale(col("close"), gross=0)
    Traceback (most recent call last):
    ...
    ValueError: cs.scale: gross must be a positive number, got 0
    """
    if isinstance(gross, bool) or not isinstance(gross, (int, float)) or not gross > 0:
        raise ValueError(f"cs.scale: gross must be a positive number, got {gross!r}")
    return Expr("cs_scale", as_expr(x), gross=float(gross))


def neutralize(x: Expr | Number, groups: Mapping[str, str]) -> Expr:
    """``x`` demeaned within groups (e.g. sectors): ``groups`` maps each traded symbol to its
    group (see :func:`groups_from_csv`). Every traded symbol must have a group.

    >>> from qmtl.core.expr import col
    >>> neutralize(col("close"), {"A": "tech", "B": "energy"}).params["groups"]
    {'A': 'tech', 'B': 'energy'}
    """
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("cs.neutralize: groups must be a non-empty mapping symbol -> group")
    clean = {str(k): str(v) for k, v in sorted(groups.items())}
    return Expr("cs_neutralize", as_expr(x), groups=clean)


def _count(name: str, k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"cs.{name}: k must be a positive integer, got {k!r}")
    return k


def top(x: Expr | Number, k: int) -> Expr:
    """1.0 for the ``k`` symbols with the highest ``x``, else 0.0 (ties: the symbol first by
    name wins).

    >>> from qmtl.core.expr import col
    >>> top(col("close"), 10).params
    {'k': 10}
    """
    return Expr("cs_top", as_expr(x), k=_count("top", k))


def bottom(x: Expr | Number, k: int) -> Expr:
    """1.0 for the ``k`` symbols with the lowest ``x``, else 0.0 (ties as :func:`top`).

    >>> from qmtl.core.expr import col
    >>> bottom(col("close"), 3).op
    'cs_bottom'
    """
    return Expr("cs_bottom", as_expr(x), k=_count("bottom", k))


def groups_from_csv(path: str | Path) -> dict[str, str]:
    """A symbol -> group mapping from a CSV file with a header: the first column is the
    symbol, the second the group (e.g. ``symbol,sector``).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "sectors.csv")
    >>> _ = open(p, "w").write("symbol,sector\\nAAPL,tech\\nXOM,energy\\n")
    >>> groups_from_csv(p)
    {'AAPL': 'tech', 'XOM': 'energy'}
    """
    out: dict[str, str] = {}
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: empty groups file (expected a header and symbol,group rows)")
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise ValueError(f"{path}:{line}: expected symbol,group, got {','.join(row)!r}")
        sym = row[0].strip()
        if sym in out:
            raise ValueError(f"{path}:{line}: symbol {sym!r} listed twice")
        out[sym] = row[1].strip()
    return out
