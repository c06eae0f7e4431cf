"""Returns a user gives instead of a backtest (``submit(returns=...)``, or a strategy's own
``returns()``/``equity()``/``pnl()``), with the close time of each period.

A series with a datetime index (a pandas Series) gives each return its index's time (naive
times are UTC); a bare series gets bar ``i`` closing ``i + 1`` intervals of the strategy after
the epoch, so bare series line up by position, as they did before returns had times.

>>> from qmtl import Strategy
>>> class Own(Strategy):
...     interval = "1h"
...     def equity(self):
...         return [100.0, 110.0, 99.0]
>>> ts, r = given_returns(Own(), None, 1e6)
>>> ts.tolist(), r.round(6).tolist()
([7200000000000, 10800000000000], [0.1, -0.1])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qmtl.core.intervals import interval_ns
from qmtl.strategy import Strategy


def period_times(series: Any, n: int, interval: str) -> np.ndarray:
    """The close times of a series' ``n`` periods: its datetime index's (ns UTC), else bar
    ``i`` closing ``i + 1`` ``interval`` after the epoch.

    >>> period_times([0.1, 0.2], 2, "1m").tolist()
    [60000000000, 120000000000]
    """
    index = getattr(series, "index", None)
    if index is not None and str(getattr(index, "dtype", "")).startswith("datetime64"):
        if hasattr(index, "as_unit"):  # pandas 2 keeps s/ms/us indexes in their unit
            index = index.as_unit("ns")
        ts = np.asarray(index.asi8, dtype=np.int64)
        if len(ts) == n:
            return ts
    return (np.arange(n, dtype=np.int64) + 1) * interval_ns(interval)


def given_returns(
    s: Strategy, given: Any, capital: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(times, returns)`` from an explicit series ``given``, else from the strategy's
    ``returns``, ``equity`` (returns between its values) or ``pnl`` (divided by ``capital``);
    None when there is none of them."""
    source, name = given, "returns"
    if given is None:
        for name in ("returns", "equity", "pnl"):
            fn = getattr(s, name, None)
            if fn is not None:
                source = fn() if callable(fn) else fn
                break
        else:
            return None
    values = np.asarray(source, dtype=np.float64).ravel()
    ts = period_times(source, len(values), s.interval)
    if name == "equity":
        return ts[1:], values[1:] / values[:-1] - 1.0
    if name == "pnl":
        return ts, values / capital
    return ts, values
