"""A run's trades: its round trips (:func:`round_trips`, what the tear sheet lists and
``Run.trades()`` returns) and its position changes (:func:`position_changes`, one record
each time a symbol's weight changes).

**Round trips.** A round trip of a symbol is a stretch of bars over which its weight keeps one
sign: it opens at the bar at whose close the weight leaves 0 (or changes sign) and closes at
the bar at whose close the weight goes back to 0 (or changes sign again: a flip closes one
trip and opens the next at the same bar). Adding to or trimming a position (1 -> 0.5) stays
within its trip. A record holds ``symbol``, ``side`` (``long``/``short``), ``entry`` and
``exit`` (the bars' times; ``exit`` is -1 while the trip is still open at the end of the
run, and ``open`` is then true), ``bars`` (how many of the symbol's bars it was held),
``return`` (the symbol's close-to-close move from entry to exit, in the trip's favour:
negated for a short; NaN without closes) and ``pnl`` (what the trip added to the
portfolio, in units of the starting capital, the costs of opening, resizing and closing it
included).

The engine charges the cost of a change decided at bar t at the symbol's next bar, so a
trip's ``pnl`` is the sum of its symbol's rows' ``contrib * equity_before`` from the bar
after its entry to the bar after its exit. At a flip, that next bar's cost pays for closing
one trip and opening the other: it is split between them in proportion to the weights
closed and opened (without closes, it all goes to the trip opened). Every row of a symbol's
P&L therefore belongs to exactly one trip, or is 0: the ``pnl`` of a symbol's trips adds up
to its contribution.

>>> import numpy as np
>>> from qmtl.report.stats import Rows
>>> rows = Rows(np.arange(1, 6), np.zeros(5, int), ["A"],
...             weight=np.array([1.0, 1.0, 0.0, 0.0, 0.0]),
...             contrib=np.array([0.0, 0.1, 0.1, 0.0, 0.0]),
...             equity=np.array([1.0, 1.1, 1.21, 1.21, 1.21]),
...             close=np.array([10.0, 11.0, 12.1, 12.1, 9.0]))
>>> t = round_trips(rows)
>>> t["side"].tolist(), t["entry"].tolist(), t["exit"].tolist(), t["bars"].tolist()
(['long'], [1], [3], [2])
>>> t["return"].round(4).tolist(), t["pnl"].round(4).tolist()
([0.21], [0.21])

**Position changes.**

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

TRIP_COLUMNS = ("symbol", "side", "entry", "exit", "bars", "return", "pnl", "open")
"""The fields of a round trip, in order."""


def _shift(a: np.ndarray, starts: np.ndarray, fill: float, by: int = 1) -> np.ndarray:
    """``a`` moved ``by`` rows down within each group (``starts``: the groups' first rows,
    as a boolean mask), ``fill`` where that would cross into the previous group.

    >>> _shift(np.array([1, 2, 3, 4]), np.array([True, False, True, False]), 0).tolist()
    [0, 1, 0, 3]
    """
    out = a.copy()
    for _ in range(by):
        out = np.concatenate([[fill], out[:-1]]).astype(a.dtype)
        out[starts] = fill
    return out


def round_trips(rows: Rows) -> dict[str, np.ndarray]:
    """Every round trip of ``rows`` (see the module docstring), ordered by entry then
    symbol, as arrays keyed by :data:`TRIP_COLUMNS`.

    >>> from qmtl.report.stats import Rows
    >>> flip = Rows(np.arange(1, 5), np.zeros(4, int), ["A"],
    ...             weight=np.array([1.0, -1.0, -1.0, -1.0]), contrib=np.zeros(4),
    ...             equity=np.ones(4))
    >>> t = round_trips(flip)
    >>> t["side"].tolist(), t["exit"].tolist(), t["open"].tolist(), t["bars"].tolist()
    (['long', 'short'], [2, -1], [False, True], [1, 2])
    """
    order, bounds = rows.groups
    n = len(order)
    starts = np.zeros(n, bool)
    starts[bounds[:-1][bounds[:-1] < n]] = True
    w = rows.weight[order]
    code = rows.code[order]
    ts = rows.ts[order]
    sign = np.sign(w)
    sign_prev = _shift(sign, starts, 0.0)
    opens = (sign != 0) & (sign != sign_prev)
    trip = np.where(sign != 0, np.cumsum(opens) - 1, -1)  # the trip holding each row's weight
    k = int(opens.sum())
    held = _shift(trip, starts, -1)  # the trip whose weight earned each row's move
    before = _shift(trip, starts, -1, by=2)  # ... and the one the row's cost may close
    pnl_rows = (rows.contrib * rows.equity_before)[order]
    owner = np.where(held >= 0, held, before)  # a row after an exit: that exit's cost
    flip = (held >= 0) & (before >= 0) & (held != before)
    share = np.zeros(n)
    if rows.close is not None and flip.any():
        close = rows.close[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            moved = close / _shift(close, starts, np.nan) - 1.0
        moved = np.where(np.isfinite(moved), moved, 0.0)
        cost = pnl_rows - _shift(w, starts, 0.0) * moved * rows.equity_before[order]
        w1, w2 = np.abs(_shift(w, starts, 0.0)), np.abs(_shift(w, starts, 0.0, by=2))
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(flip, cost * w2 / (w1 + w2), 0.0)
    mine = owner >= 0
    pnl = np.bincount(owner[mine], weights=(pnl_rows - share)[mine], minlength=k)
    pnl += np.bincount(before[flip], weights=share[flip], minlength=k)
    first = np.flatnonzero(opens)
    # a trip's last row, then the row after it (its exit) unless the symbol's rows end
    last = np.zeros(k, np.int64)
    np.maximum.at(last, trip[trip >= 0], np.flatnonzero(trip >= 0))
    group_end = (bounds[1:] - 1)[code[first]] if k else np.zeros(0, np.int64)
    is_open = last >= group_end
    exit_row = np.where(is_open, group_end, last + 1)
    if rows.close is not None:
        close = rows.close[order]
        with np.errstate(divide="ignore", invalid="ignore"):
            ret = (close[exit_row] / close[first] - 1.0) * sign[first]
    else:
        ret = np.full(k, np.nan)
    by_time = np.lexsort((code[first], ts[first]))
    names = np.array(rows.symbols, dtype=object)
    return {
        "symbol": names[code[first]][by_time] if k else np.empty(0, object),
        "side": np.where(sign[first] > 0, "long", "short").astype(object)[by_time],
        "entry": ts[first][by_time],
        "exit": np.where(is_open, -1, ts[exit_row])[by_time],
        "bars": (exit_row - first)[by_time],
        "return": ret[by_time],
        "pnl": pnl[by_time],
        "open": is_open[by_time],
    }


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
