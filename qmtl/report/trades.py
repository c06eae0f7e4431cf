"""The list of position changes of a run: one record each time a symbol's weight changes.

A record says when (``ts``, the bar at whose close the new weight was decided), which
``symbol``, the weight before and after, and what the new weight earned while it was held,
until the symbol's next change or the end of the run:

- ``bars``: how many of the symbol's bars it was held;
- ``return``: the symbol's close-to-close return over that stretch (NaN when the run folder
  carries no closes);
- ``pnl``: what the position added to the portfolio over that stretch, cost of this change
  included, in units of the starting capital (the sum of the symbol's ``contrib *
  equity_before``, as in :meth:`qmtl.report.stats.Rows.contributions`): a symbol's records'
  ``pnl`` add up to its contribution.

The first bar of a symbol is compared with a weight of 0.0.

>>> import numpy as np
>>> from qmtl.report.stats import Rows
>>> rows = Rows(np.array([1, 2, 3]), np.zeros(3, int), ["A"], weight=np.array([1.0, 1.0, 0.0]),
...             contrib=np.array([0.0, 0.1, 0.0]), equity=np.array([1.0, 1.1, 1.1]),
...             close=np.array([10.0, 11.0, 11.0]))
>>> t = position_changes(rows)
>>> t["ts"].tolist(), t["weight_after"].tolist(), t["return"].round(6).tolist(), t["bars"].tolist()
([1, 3], [1.0, 0.0], [0.1, 0.0], [2, 0])
"""

from __future__ import annotations

import numpy as np

from qmtl.report.stats import Rows

COLUMNS = ("ts", "symbol", "weight_before", "weight_after", "bars", "return", "pnl")
"""The fields of a position change, in order."""


def position_changes(rows: Rows) -> dict[str, np.ndarray]:
    """Every position change of ``rows`` (see the module docstring), ordered by time then
    symbol, as arrays keyed by :data:`COLUMNS` (``symbol`` as an array of names).

    >>> from qmtl.report.stats import Rows
    >>> empty = Rows(np.empty(0, int), np.empty(0, int), ["A"], weight=np.empty(0),
    ...              contrib=np.empty(0), equity=np.empty(0))
    >>> len(position_changes(empty)["ts"])
    0
    """
    order, bounds = rows.groups
    w = rows.weight[order]
    prev = rows.prev_weight[order]
    code = rows.code[order]
    change = np.flatnonzero(w != prev)
    # where each held stretch ends: the symbol's next change, or its last row
    group_end = (bounds[1:] - 1)[code[change]]
    following = np.concatenate([change[1:], [len(w)]])
    end = np.minimum(following, group_end)
    pnl_rows = (rows.contrib * rows.equity_before)[order]
    cum = np.concatenate([[0.0], np.cumsum(pnl_rows)])
    pnl = cum[end + 1] - cum[change + 1]
    if rows.close is not None:
        close = rows.close[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = close[end] / close[change] - 1.0
    else:
        ret = np.full(len(change), np.nan)
    ts = rows.ts[order][change]
    by_time = np.lexsort((code[change], ts))
    names = np.array(rows.symbols, dtype=object)
    return {
        "ts": ts[by_time],
        "symbol": names[code[change]][by_time] if len(change) else np.empty(0, object),
        "weight_before": prev[change][by_time],
        "weight_after": w[change][by_time],
        "bars": (end - change)[by_time],
        "return": ret[by_time],
        "pnl": pnl[by_time],
    }
