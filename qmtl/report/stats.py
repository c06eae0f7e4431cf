"""The statistics of a tear sheet, as pure functions over numpy arrays.

Everything here is computed from a run's rows (one per symbol per bar: time, symbol, weight,
contribution, portfolio equity and, in newer runs, the bar's close), never from a second
engine. Definitions (each function's docstring repeats its own):

- the portfolio's **return** over a bar is ``equity[t] / equity[t-1] - 1`` with equity 1.0
  before the first bar (the engine's returns, to rounding);
- **drawdown** (underwater) is ``equity / peak - 1`` where the peak includes the starting
  1.0, so its minimum is ``-max_drawdown`` of ``metrics.json``;
- **monthly/yearly returns** compound: equity at the period's last bar over equity at the
  previous period's last bar (1.0 before the first), minus 1;
- **rolling Sharpe and volatility**: mean / std (ddof=1) * sqrt(periods_per_year) and
  std * sqrt(periods_per_year) over a trailing window of bars;
- a symbol's **contribution** is its P&L in units of the starting capital,
  ``sum_t c[i,t] * equity[t-1]`` (``c`` its row's return column); the contributions of all
  symbols add up to the total return, because ``equity[t] - equity[t-1] = equity[t-1] *
  sum_i c[i,t]``.

>>> eq = np.array([1.1, 0.99, 1.2])
>>> drawdown(eq).round(2).tolist()
[0.0, -0.1, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

NS_PER_DAY = 86_400 * 10**9


def bar_returns(equity: np.ndarray) -> np.ndarray:
    """Each bar's return from the equity curve (equity 1.0 before the first bar).

    >>> bar_returns(np.array([1.1, 0.99])).round(6).tolist()
    [0.1, -0.1]
    """
    prev = np.concatenate([[1.0], equity[:-1]])
    return equity / prev - 1.0


def drawdown(equity: np.ndarray) -> np.ndarray:
    """Underwater curve: ``equity / running peak - 1`` (<= 0), the peak starting at 1.0.

    >>> drawdown(np.array([0.9, 1.2, 0.6])).round(3).tolist()
    [-0.1, 0.0, -0.5]
    """
    peak = np.maximum(np.maximum.accumulate(equity), 1.0) if len(equity) else equity
    return equity / peak - 1.0


def worst_drawdowns(equity: np.ndarray, top: int = 5) -> dict[str, np.ndarray]:
    """The ``top`` deepest drawdowns of the equity curve, deepest first, as arrays of bar
    indices and values keyed ``start``, ``trough``, ``recovery``, ``depth``, ``length``.

    A drawdown is a stretch of bars under water (:func:`drawdown` below 0). ``start`` is its
    peak, the last bar before it (bar 0 when the run loses from its first bar: the peak is
    then the starting capital); ``trough`` its lowest bar; ``recovery`` the first bar back at
    the peak (-1 when the run ends under water); ``depth`` the lowest ``equity / peak - 1``
    (negative); ``length`` the bars from ``start`` to ``recovery`` (to the last bar when not
    recovered). Equal depths keep time order.

    >>> eq = np.array([1.0, 1.2, 0.9, 1.2, 1.3, 1.17, 1.3, 1.25])
    >>> d = worst_drawdowns(eq)
    >>> d["start"].tolist(), d["trough"].tolist(), d["recovery"].tolist()
    ([1, 4, 6], [2, 5, 7], [3, 6, -1])
    >>> d["depth"].round(4).tolist(), d["length"].tolist()
    ([-0.25, -0.1, -0.0385], [2, 2, 1])
    """
    dd = drawdown(np.asarray(equity, dtype=np.float64))
    n = len(dd)
    under = dd < 0
    edges = np.diff(np.concatenate([[0], under.astype(np.int8), [0]]))
    first, end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # [first, end)
    depth = np.array([dd[a:b].min() for a, b in zip(first, end, strict=True)])
    trough = np.array([a + int(np.argmin(dd[a:b])) for a, b in zip(first, end, strict=True)],
                      dtype=np.int64)
    start = np.maximum(first - 1, 0)
    recovered = end < n
    recovery = np.where(recovered, end, -1)
    length = np.where(recovered, end, n - 1) - start
    pick = np.argsort(depth, kind="stable")[:top] if len(depth) else np.zeros(0, np.int64)
    return {"start": start[pick], "trough": trough[pick], "recovery": recovery[pick],
            "depth": depth[pick] if len(depth) else np.zeros(0), "length": length[pick]}


def alpha_beta(returns: np.ndarray, benchmark: np.ndarray,
               periods_per_year: float) -> dict[str, float]:
    """The strategy's ``beta`` and ``alpha`` against the benchmark: the ordinary least
    squares line ``returns = alpha_bar + beta * benchmark`` over the bars where both returns
    are finite, with ``alpha`` annualized as ``alpha_bar * periods_per_year`` (quantstats'
    convention; empyrical compounds it instead). Also ``alpha_bar``, ``correlation`` and
    ``r2``; all NaN with fewer than 2 such bars or a benchmark that never moves.

    >>> b = np.array([0.01, -0.02, 0.03, 0.0])
    >>> ab = alpha_beta(0.0005 + 1.5 * b, b, 252.0)
    >>> round(ab["beta"], 6), round(ab["alpha_bar"], 6), round(ab["alpha"], 4), round(ab["r2"], 9)
    (1.5, 0.0005, 0.126, 1.0)
    """
    r = np.asarray(returns, dtype=np.float64)
    b = np.asarray(benchmark, dtype=np.float64)
    ok = np.isfinite(r) & np.isfinite(b)
    r, b = r[ok], b[ok]
    nan = {"alpha": math.nan, "beta": math.nan, "alpha_bar": math.nan,
           "correlation": math.nan, "r2": math.nan}
    if len(r) < 2:
        return nan
    db, dr = b - b.mean(), r - r.mean()
    sbb, srr, sbr = float(db @ db), float(dr @ dr), float(db @ dr)
    if sbb <= 0:
        return nan
    beta = sbr / sbb
    alpha_bar = float(r.mean() - beta * b.mean())
    corr = sbr / math.sqrt(sbb * srr) if srr > 0 else math.nan
    return {"alpha": alpha_bar * periods_per_year, "beta": beta, "alpha_bar": alpha_bar,
            "correlation": corr, "r2": corr * corr}


def period_returns(ts: np.ndarray, equity: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Compounded returns per calendar period (``unit``: ``"M"`` month or ``"Y"`` year, UTC):
    ``(period starts as datetime64, returns)``. A period's return is its last equity over the
    previous period's last equity (1.0 before the first) minus 1.

    >>> ts = np.array(["2024-01-05", "2024-01-31", "2024-02-02"], "datetime64[ns]").astype(int)
    >>> months, r = period_returns(ts, np.array([1.1, 1.2, 0.9]), "M")
    >>> [str(m) for m in months], r.round(4).tolist()
    (['2024-01', '2024-02'], [0.2, -0.25])
    """
    if unit not in ("M", "Y"):
        raise ValueError(f"unit must be 'M' or 'Y', got {unit!r}")
    periods = ts.astype("datetime64[ns]").astype(f"datetime64[{unit}]")
    if not len(ts):
        return periods, np.empty(0)
    last = np.flatnonzero(np.concatenate([periods[1:] != periods[:-1], [True]]))
    ends = equity[last]
    prev = np.concatenate([[1.0], ends[:-1]])
    return periods[last], ends / prev - 1.0


def period_sums(ts: np.ndarray, values: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Sums of ``values`` per calendar period (``"M"`` or ``"Y"``): ``(periods, sums)``.

    >>> ts = np.array(["2024-01-05", "2024-01-31", "2024-02-02"], "datetime64[ns]").astype(int)
    >>> months, s = period_sums(ts, np.array([1.0, 0.5, 2.0]), "M")
    >>> s.tolist()
    [1.5, 2.0]
    """
    periods = ts.astype("datetime64[ns]").astype(f"datetime64[{unit}]")
    if not len(ts):
        return periods, np.empty(0)
    first = np.flatnonzero(np.concatenate([[True], periods[1:] != periods[:-1]]))
    return periods[first], np.add.reduceat(values, first)


def monthly_table(ts: np.ndarray, equity: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Monthly returns as a year x month grid: ``(years, grid)``, NaN where a month has no
    bars.

    >>> ts = np.array(["2023-12-29", "2024-02-02"], "datetime64[ns]").astype(int)
    >>> years, grid = monthly_table(ts, np.array([1.1, 1.21]))
    >>> years, grid.round(2)[1, :3].tolist()
    ([2023, 2024], [nan, 0.1, nan])
    """
    months, r = period_returns(ts, equity, "M")
    if not len(months):
        return [], np.empty((0, 12))
    m = months.astype(int)  # months since 1970-01
    first_year = int(m[0] // 12)
    years = list(range(first_year, int(m[-1] // 12) + 1))
    grid = np.full((len(years), 12), np.nan)
    grid[m // 12 - first_year, m % 12] = r
    return [1970 + y for y in years], grid


def default_window(n: int, periods_per_year: float) -> int:
    """The rolling window: half a year of bars (126 daily bars, as quantstats), at most a
    quarter of the run, at least 2.

    >>> default_window(2520, 252.0), default_window(100, 252.0), default_window(3, 252.0)
    (126, 25, 2)
    """
    return max(2, min(round(periods_per_year / 2), n // 4))


def rolling_moments(returns: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and standard deviation (ddof=1) over ``window`` bars (NaN before the
    first full window), from centred cumulative sums (stable over millions of bars); a
    window of equal values has a deviation of exactly 0.

    >>> mean, sd = rolling_moments(np.array([1.0, 2.0, 3.0, 5.0]), 2)
    >>> mean.tolist(), sd.round(4).tolist()
    ([nan, 1.5, 2.5, 4.0], [nan, 0.7071, 0.7071, 1.4142])
    """
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    n = len(returns)
    mean = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    if n < window:
        return mean, sd
    centre = float(returns.mean())
    x = returns - centre
    s1 = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    w1 = s1[window:] - s1[:-window]
    w2 = s2[window:] - s2[:-window]
    mean[window - 1:] = w1 / window + centre
    var = (w2 - w1 * w1 / window) / (window - 1)
    sd[window - 1:] = np.sqrt(np.maximum(var, 0.0))
    # a window of equal values (a strategy out of the market) has no spread at all; the
    # sums' rounding (~1e-10) must not make one up, nor a Sharpe ratio from it
    moves = np.concatenate([[0], np.cumsum(returns[1:] != returns[:-1])])
    flat = (moves[window - 1:] - moves[: n - window + 1]) == 0
    sd[window - 1:][flat] = 0.0
    mean[window - 1:][flat] = returns[window - 1:][flat]
    return mean, sd


def rolling_sharpe_vol(
    returns: np.ndarray, window: int, periods_per_year: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rolling annualized Sharpe (risk-free 0) and volatility over ``window`` bars.

    >>> sharpe, vol = rolling_sharpe_vol(np.array([0.01, 0.03, -0.01]), 2, 4.0)
    >>> sharpe.round(3).tolist(), vol.round(4).tolist()
    ([nan, 2.828, 0.707], [nan, 0.0283, 0.0566])
    """
    mean, sd = rolling_moments(returns, window)
    root = math.sqrt(periods_per_year)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = np.where(sd > 0, mean / sd * root, np.nan)
    return sharpe, sd * root


def histogram(returns: np.ndarray, bins: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """The distribution of returns: ``(bin edges, counts)`` over the finite returns.

    >>> edges, counts = histogram(np.array([0.0, 0.1, 0.1, 0.2]), bins=2)
    >>> edges.round(2).tolist(), counts.tolist()
    ([0.0, 0.1, 0.2], [1, 3])
    """
    finite = returns[np.isfinite(returns)]
    counts, edges = np.histogram(finite, bins=bins)
    return edges, counts


@dataclass
class Rows:
    """A run's rows (one per symbol per bar, ordered by time then symbol), as arrays.

    ``code`` indexes ``symbols``; ``contrib`` is the row's return column (the symbol's
    contribution to the portfolio's return over the bar, cost included); ``equity`` the
    portfolio's equity after the bar; ``close`` the bar's close (None for runs written before
    qmtl kept prices).

    >>> r = Rows(np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1]), ["A", "B"],
    ...          weight=np.array([0.5, 0.5, 0.5, 0.0]), contrib=np.array([0, 0, 0.1, -0.05]),
    ...          equity=np.array([1.0, 1.0, 1.05, 1.05]))
    >>> r.timeline.tolist(), r.turnover.tolist(), r.gross.tolist()
    ([1, 2], [1.0, 0.5], [1.0, 0.5])
    """

    ts: np.ndarray
    code: np.ndarray
    symbols: list[str]
    weight: np.ndarray
    contrib: np.ndarray
    equity: np.ndarray
    close: np.ndarray | None = None
    _cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @cached_property
    def _new_time(self) -> np.ndarray:
        ts = self.ts
        return np.concatenate([[True], ts[1:] != ts[:-1]]) if len(ts) else np.empty(0, bool)

    @cached_property
    def timeline(self) -> np.ndarray:
        """The portfolio's bar times (ns)."""
        return self.ts[self._new_time]

    @cached_property
    def row_time(self) -> np.ndarray:
        """Each row's index into :attr:`timeline`."""
        return np.cumsum(self._new_time) - 1

    @cached_property
    def curve(self) -> np.ndarray:
        """The portfolio's equity after each bar of :attr:`timeline`."""
        return self.equity[self._new_time]

    @cached_property
    def returns(self) -> np.ndarray:
        """The portfolio's return over each bar (see :func:`bar_returns`)."""
        return bar_returns(self.curve)

    @cached_property
    def groups(self) -> tuple[np.ndarray, np.ndarray]:
        """``(order, bounds)``: row indices grouped by symbol (in time order within each),
        symbol ``i`` at ``order[bounds[i]:bounds[i + 1]]``."""
        n = len(self.symbols)
        small = self.code.astype(np.int16 if n < 2**15 else np.int64)
        order = np.argsort(small, kind="stable")  # a radix sort of small codes: O(n)
        return order, np.searchsorted(small[order], np.arange(n + 1))

    @cached_property
    def prev_weight(self) -> np.ndarray:
        """Each row's symbol's weight at its previous bar (0.0 at its first)."""
        order, bounds = self.groups
        w = self.weight[order]
        prev = np.concatenate([[0.0], w[:-1]])
        prev[bounds[:-1][bounds[:-1] < len(w)]] = 0.0
        out = np.empty_like(prev)
        out[order] = prev
        return out

    @cached_property
    def turnover(self) -> np.ndarray:
        """Sum of absolute weight changes at each bar of :attr:`timeline`.

        Rebuilt from each symbol's rows, it equals the engine's except where a symbol had no
        bar while the gross cap rescaled its weight (the rows hold weights only at a
        symbol's own bars); a result in memory carries the engine's own."""
        dw = np.abs(self.weight - self.prev_weight)
        return np.bincount(self.row_time, weights=dw, minlength=len(self.timeline))

    @cached_property
    def gross(self) -> np.ndarray:
        """Gross exposure (sum of absolute weights, each held until its symbol's next bar)
        after each bar of :attr:`timeline`."""
        delta = np.abs(self.weight) - np.abs(self.prev_weight)
        return np.cumsum(np.bincount(self.row_time, weights=delta, minlength=len(self.timeline)))

    def _held(self, part: np.ndarray) -> np.ndarray:
        """The sum over symbols of ``part`` (one value per row), each held until its
        symbol's next bar, after each bar of :attr:`timeline`."""
        order, bounds = self.groups
        p = part[order]
        prev = np.concatenate([[0.0], p[:-1]])
        prev[bounds[:-1][bounds[:-1] < len(p)]] = 0.0
        delta = np.empty_like(p)
        delta[order] = p - prev
        return np.cumsum(np.bincount(self.row_time, weights=delta,
                                     minlength=len(self.timeline)))

    @cached_property
    def long(self) -> np.ndarray:
        """Long exposure (sum of positive weights, each held until its symbol's next bar)
        after each bar of :attr:`timeline`.

        >>> r = Rows(np.array([1, 1, 2]), np.array([0, 1, 0]), ["A", "B"],
        ...          weight=np.array([0.6, -0.4, 0.2]), contrib=np.zeros(3), equity=np.ones(3))
        >>> r.long.round(6).tolist(), r.short.round(6).tolist(), r.net.round(6).tolist()
        ([0.6, 0.2], [-0.4, -0.4], [0.2, -0.2])
        """
        return self._held(np.maximum(self.weight, 0.0))

    @cached_property
    def short(self) -> np.ndarray:
        """Short exposure (sum of negative weights, so <= 0) after each bar of
        :attr:`timeline`."""
        return self._held(np.minimum(self.weight, 0.0))

    @cached_property
    def net(self) -> np.ndarray:
        """Net exposure (sum of weights: :attr:`long` + :attr:`short`) after each bar."""
        return self.long + self.short

    @property
    def has_shorts(self) -> bool:
        """Whether any weight of the run is negative (a long/short book)."""
        return bool((self.weight < 0).any())

    @cached_property
    def equity_before(self) -> np.ndarray:
        """Each row's portfolio equity before its bar (1.0 before the first)."""
        curve = self.curve
        return np.concatenate([[1.0], curve[:-1]])[self.row_time]

    def contributions(self) -> dict[str, float]:
        """Each symbol's P&L in units of the starting capital (``sum_t c[i,t] *
        equity[t-1]``); they add up to the total return.

        >>> r = Rows(np.array([1, 2, 2]), np.array([0, 0, 1]), ["A", "B"],
        ...          weight=np.array([1.0, 0.5, 0.5]), contrib=np.array([0.0, 0.1, 0.0]),
        ...          equity=np.array([1.0, 1.1, 1.1]))
        >>> {k: round(v, 6) for k, v in r.contributions().items()}
        {'A': 0.1, 'B': 0.0}
        """
        pnl = np.bincount(self.code, weights=self.contrib * self.equity_before,
                          minlength=len(self.symbols))
        return {s: float(v) for s, v in zip(self.symbols, pnl, strict=True)}

    def benchmark(self, symbol: str | None = None) -> np.ndarray:
        """Equity of buying and holding, on :attr:`timeline`: the universe in equal parts
        (``symbol`` None; each symbol's part stays cash until its first bar), or one symbol.
        Each symbol's close is carried over bars it lacks. Needs :attr:`close`.

        >>> r = Rows(np.array([1, 1, 2, 2]), np.array([0, 1, 0, 1]), ["A", "B"],
        ...          weight=np.zeros(4), contrib=np.zeros(4), equity=np.ones(4),
        ...          close=np.array([10.0, 20.0, 11.0, 30.0]))
        >>> r.benchmark().tolist(), r.benchmark("B").tolist()
        ([1.0, 1.3], [1.0, 1.5])
        """
        if self.close is None:
            raise ValueError("these rows carry no closes")
        order, bounds = self.groups
        chosen = range(len(self.symbols))
        if symbol is not None:
            chosen = [self.symbols.index(symbol)]
        delta = np.zeros(len(self.timeline))
        for i in chosen:
            rows = order[bounds[i]:bounds[i + 1]]
            close = self.close[rows]
            ok = np.isfinite(close) & (close > 0)
            rows, close = rows[ok], close[ok]
            if not len(rows):
                continue
            rel = close / close[0]
            step = np.diff(np.concatenate([[1.0], rel]))
            delta += np.bincount(self.row_time[rows], weights=step, minlength=len(delta))
        return 1.0 + np.cumsum(delta) / len(chosen)
