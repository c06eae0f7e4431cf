"""Checks a desk runs before an alpha trades (pure numpy, no I/O): the largest weight of one
symbol in a book, the documented deterministic half of a universe and the ratio of its
Sharpe to the full universe's, and the out-of-sample Sharpe over the last N bars.

Definitions (issue 28 §5):

- ``max_symbol_weight``: over the bars of a run, the largest share of one symbol in the
  gross book, ``max_t max_i |w[t, i]| / sum_i |w[t, i]|``; bars with no position are skipped
  (0.0 when every bar is flat). 1.0 means the whole book in one symbol on some bar.
- ``half_universe``: the symbols sorted (Python string order), then every other one starting
  with the first (positions 0, 2, 4, ...). It depends only on the set of symbols.
- ``half_universe_ratio``: ``sharpe(half) / sharpe(full)``; NaN when the full Sharpe is 0
  or either is undefined (a NaN never passes a gate).
- ``oos_sharpe``: the Sharpe (mean / std(ddof=1) * sqrt(periods per year), risk-free 0, as
  :mod:`dataflows.metrics.risk`) of the last ``bars`` returns of a record; NaN with fewer
  than ``bars`` returns or no spread.

>>> import numpy as np
>>> max_symbol_weight(np.array([[0.5, -0.5], [0.9, 0.1]]))
0.9
>>> half_universe(["MSFT", "AAPL", "TSLA", "NVDA"])
['AAPL', 'NVDA']
>>> round(oos_sharpe(np.array([9.0, 0.01, 0.03, 0.02]), 3, 252), 4)
31.749
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def max_symbol_weight(weights: np.ndarray) -> float:
    """The largest ``|w_i| / sum |w|`` over bars (rows) and symbols (columns).

    >>> max_symbol_weight(np.zeros((3, 2)))
    0.0
    """
    w = np.abs(np.asarray(weights, dtype=np.float64))
    if w.ndim != 2:
        raise ValueError(f"weights must be bars x symbols (2-D), got shape {w.shape}")
    w = np.nan_to_num(w, nan=0.0)
    gross = w.sum(axis=1)
    held = gross > 0
    if not held.any():
        return 0.0
    return float((w[held].max(axis=1) / gross[held]).max())


def half_universe(symbols: Iterable[str]) -> list[str]:
    """The documented deterministic half: sorted symbols at even positions.

    >>> half_universe(["B", "A", "C"])
    ['A', 'C']
    """
    return sorted(set(symbols))[::2]


def sharpe(returns: np.ndarray, periods_per_year: float) -> float:
    """mean / std(ddof=1) * sqrt(periods_per_year); NaN below two values or no spread.

    >>> sharpe(np.array([0.01]), 252)
    nan
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 2:
        return math.nan
    sd = float(r.std(ddof=1))
    if not sd > 0:
        return math.nan
    return float(r.mean() / sd * math.sqrt(periods_per_year))


def half_universe_ratio(half: np.ndarray, full: np.ndarray, periods_per_year: float) -> float:
    """``sharpe(half) / sharpe(full)`` of two return series; NaN when undefined.

    >>> half_universe_ratio(np.array([0.01, 0.03]), np.array([0.01, 0.03]), 252)
    1.0
    """
    s_half, s_full = sharpe(half, periods_per_year), sharpe(full, periods_per_year)
    if math.isnan(s_half) or math.isnan(s_full) or s_full == 0:
        return math.nan
    return s_half / s_full


def oos_sharpe(returns: np.ndarray, bars: int, periods_per_year: float) -> float:
    """The Sharpe of the last ``bars`` returns; NaN with fewer returns than ``bars``.

    >>> oos_sharpe(np.array([0.01, 0.02]), 3, 252)
    nan
    """
    if bars < 2:
        raise ValueError(f"oos bars must be >= 2, got {bars}")
    r = np.asarray(returns, dtype=np.float64)
    if r.size < bars:
        return math.nan
    return sharpe(r[-bars:], periods_per_year)
