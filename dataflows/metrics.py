"""Streaming, mergeable performance metrics over per-period simple returns.

One small class per metric, in the style of ``river.stats``: ``update(batch)`` consumes a
batch of returns (any length), ``get()`` gives the current value, and ``a += b`` merges a
metric of the periods that *follow* ``a``'s. Updating with any split of a series, or merging
metrics of consecutive pieces, gives the one-batch value (to ~1e-15 relative). Memory is
O(1) per metric (max drawdown keeps a short list, see :class:`MaxDrawdown`).

Undefined values (too few periods, zero variance) are NaN; a profit factor with gains and no
losses is +inf. Annualization takes ``periods_per_year`` (252 for daily bars, calendar time
otherwise: :func:`qmtl.core.intervals.periods_per_year`).

>>> import numpy as np
>>> r = np.array([0.01, -0.02, 0.015, 0.005])
>>> m = MetricSet(periods_per_year=252)
>>> _ = m.update(r[:1]).update(r[1:])
>>> round(m.get()["total_return"], 6), m.get()["n_bars"]
(0.00967, 4.0)
>>> round(MaxDrawdown().update(r).get(), 4)
0.02
"""

from __future__ import annotations

import bisect
import math
from functools import lru_cache
from typing import Any, Self

import numpy as np

_NAN = float("nan")


def _f64(batch: Any) -> np.ndarray:
    return np.asarray(batch, dtype=np.float64).ravel()


class _Moments:
    """Count, mean and sum of squared deviations, merged with Chan et al.'s formula."""

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, n: int, mean: float, m2: float) -> None:
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def add_batch(self, x: np.ndarray) -> None:
        if len(x):
            mu = float(x.mean())
            # identical values have no spread, whatever the rounding of their mean
            m2 = 0.0 if x.min() == x.max() else float(((x - mu) ** 2).sum())
            self.add(len(x), mu, m2)

    def merge(self, other: _Moments) -> None:
        self.add(other.n, other.mean, other.m2)

    def std(self) -> float:
        if self.n < 2:
            return _NAN
        sd = math.sqrt(self.m2 / (self.n - 1))
        # below the rounding of the mean, a deviation is noise: treat it as none
        return 0.0 if sd <= 1e-13 * abs(self.mean) else sd


class Metric:
    """Base class: ``update``, ``get``, ``+=`` and a JSON-able ``state``."""

    def update(self, batch: Any) -> Self:
        """Consume the next batch of per-period values."""
        raise NotImplementedError

    def get(self) -> float:
        """The current value."""
        raise NotImplementedError

    def __iadd__(self, other: Self) -> Self:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.get():.6g}"


class Count(Metric):
    """Number of periods.

    >>> Count().update([0.1, 0.2]).get()
    2.0
    """

    def __init__(self) -> None:
        self.n = 0

    def update(self, batch: Any) -> Self:
        self.n += len(_f64(batch))
        return self

    def get(self) -> float:
        return float(self.n)

    def __iadd__(self, other: Count) -> Self:
        self.n += other.n
        return self


class TotalReturn(Metric):
    """Compounded return: prod(1 + r) - 1.

    >>> round(TotalReturn().update([0.1, -0.1]).get(), 10)
    -0.01
    """

    def __init__(self) -> None:
        self.equity = 1.0

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        if len(x):
            self.equity = float(np.multiply.accumulate(np.r_[self.equity, 1.0 + x])[-1])
        return self

    def get(self) -> float:
        return self.equity - 1.0

    def __iadd__(self, other: TotalReturn) -> Self:
        self.equity *= other.equity
        return self


class Cagr(Metric):
    """Compound annual growth rate: equity ** (periods_per_year / n) - 1.

    >>> round(Cagr(periods_per_year=2).update([0.1, 0.1]).get(), 10)
    0.21
    """

    def __init__(self, periods_per_year: float) -> None:
        self.ppy = float(periods_per_year)
        self.total, self.count = TotalReturn(), Count()

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        self.total.update(x)
        self.count.update(x)
        return self

    def get(self) -> float:
        n = self.count.n
        if n == 0 or self.total.equity <= 0:
            return _NAN if n == 0 else -1.0
        return self.total.equity ** (self.ppy / n) - 1.0

    def __iadd__(self, other: Cagr) -> Self:
        self.total += other.total
        self.count += other.count
        return self


class _MomentMetric(Metric):
    """A metric of the mean and variance of returns (mergeable moments)."""

    def __init__(self, periods_per_year: float) -> None:
        self.ppy = float(periods_per_year)
        self.moments = _Moments()

    def update(self, batch: Any) -> Self:
        self.moments.add_batch(_f64(batch))
        return self

    def __iadd__(self, other: _MomentMetric) -> Self:
        self.moments.merge(other.moments)
        return self


class Volatility(_MomentMetric):
    """Annualized standard deviation of returns (ddof=1).

    >>> round(Volatility(periods_per_year=4).update([0.01, -0.01]).get(), 6)
    0.028284
    """

    def get(self) -> float:
        return self.moments.std() * math.sqrt(self.ppy)


class Sharpe(_MomentMetric):
    """Annualized Sharpe ratio, risk-free 0: mean / std(ddof=1) * sqrt(periods_per_year).

    >>> round(Sharpe(periods_per_year=1).update([0.1, 0.3]).get(), 6)
    1.414214
    """

    def get(self) -> float:
        sd = self.moments.std()
        if not sd > 0:
            return _NAN
        return self.moments.mean / sd * math.sqrt(self.ppy)


class Sortino(Metric):
    """Annualized Sortino ratio (as empyrical, required return 0): mean * ppy divided by
    sqrt(mean(min(r, 0)^2) * ppy).

    >>> round(Sortino(periods_per_year=1).update([0.1, -0.1, 0.2]).get(), 6)
    1.154701
    """

    def __init__(self, periods_per_year: float) -> None:
        self.ppy = float(periods_per_year)
        self.moments = _Moments()
        self.down_sq = 0.0

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        self.moments.add_batch(x)
        neg = np.minimum(x, 0.0)
        self.down_sq += float((neg * neg).sum())
        return self

    def get(self) -> float:
        n = self.moments.n
        if n == 0:
            return _NAN
        downside = math.sqrt(self.down_sq / n) * math.sqrt(self.ppy)
        if downside == 0:
            return _NAN
        return self.moments.mean * self.ppy / downside

    def __iadd__(self, other: Sortino) -> Self:
        self.moments.merge(other.moments)
        self.down_sq += other.down_sq
        return self


class MaxDrawdown(Metric):
    """Largest peak-to-trough fall of equity, as a positive fraction (0.25 = -25%).

    Equity starts at 1.0 before the first return, so a first-period loss is a drawdown.
    ``update`` is strictly sequential (any split of the returns gives the same bits). To
    merge, each piece keeps, for every new equity high after which the piece's lowest equity
    so far changed, that high and the lowest equity before it: a short list (it grows only
    when equity sets a new low for the piece between two new highs); merged values equal
    the sequential ones up to rounding (1 - x of nearly equal numbers: ~1e-16 absolute).

    >>> m = MaxDrawdown().update([0.1, -0.5])
    >>> m.get()
    0.5
    >>> a, b = MaxDrawdown().update([0.2]), MaxDrawdown().update([-0.25, 0.5])
    >>> a += b
    >>> a.get()
    0.25
    """

    def __init__(self) -> None:
        self.equity = 1.0
        self.peak = 1.0
        self.low = 1.0
        self.dd = 0.0
        self.thresholds: list[float] = []
        self.lows: list[float] = []

    def _cross(self, prior_peak: float) -> float:
        """Lowest equity before this piece first rises above ``prior_peak`` (own units)."""
        k = bisect.bisect_right(self.thresholds, prior_peak)
        return self.lows[k] if k < len(self.lows) else self.low

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        if not len(x):
            return self
        # strictly sequential from the carried equity, peak and low: any split is bit-identical
        return self._update_path(np.multiply.accumulate(np.concatenate([[self.equity], 1.0 + x])))

    def _update_path(self, path: np.ndarray) -> Self:
        """``path``: the carried equity followed by the equity after each new return."""
        eq = path[1:]
        top = float(eq.max())
        if top <= self.peak:  # no new high: the peak stays, nothing to record
            # max(1 - eq/peak) is 1 - min(eq)/peak exactly: rounding is monotone
            self.dd = max(self.dd, 1.0 - float(eq.min()) / self.peak)
            self.equity, self.low = float(eq[-1]), float(np.minimum(self.low, eq.min()))
            return self
        run_max = np.maximum.accumulate(np.concatenate([[self.peak], eq]))
        prev_max, run_max = run_max[:-1], run_max[1:]
        self.dd = max(self.dd, 1.0 - float(np.min(eq / run_max)))
        rec = np.flatnonzero(run_max > prev_max)
        if len(rec):
            # the lowest equity before each new high: minima of the stretches between
            # records, then a running minimum over those few values (min is exact)
            stretch = np.full(len(rec), np.inf)
            if rec[-1] > 0:
                stretch[:] = np.minimum.reduceat(eq[: rec[-1]], np.concatenate([[0], rec[:-1]]))
                if rec[0] == 0:
                    stretch[0] = np.inf  # nothing before a record on the first value
            lows = np.minimum.accumulate(np.concatenate([[self.low], stretch]))[1:]
            thr = run_max[rec]
            if self.lows and lows[0] == self.lows[-1]:  # same low: the later high replaces it
                self.thresholds.pop()
                self.lows.pop()
            keep = np.concatenate([lows[1:] != lows[:-1], [True]])
            self.thresholds.extend(thr[keep].tolist())
            self.lows.extend(lows[keep].tolist())
        self.equity, self.peak = float(eq[-1]), float(run_max[-1])
        self.low = float(np.minimum(self.low, eq.min()))
        return self

    def get(self) -> float:
        return self.dd

    def __iadd__(self, other: MaxDrawdown) -> Self:
        e = self.equity
        prior = self.peak / e
        cross = 1.0 - other._cross(prior) / prior
        self.dd = max(self.dd, other.dd, cross)
        for thr, low in zip(other.thresholds, other.lows, strict=True):
            if thr * e > self.peak:
                value = min(self.low, low * e)
                if self.lows and self.lows[-1] == value:
                    self.thresholds[-1] = thr * e
                else:
                    self.thresholds.append(thr * e)
                    self.lows.append(value)
        self.peak = max(self.peak, other.peak * e)
        self.low = min(self.low, other.low * e)
        self.equity = e * other.equity
        return self


class Calmar(Metric):
    """CAGR divided by max drawdown.

    >>> round(Calmar(periods_per_year=2).update([0.2, -0.1]).get(), 6)
    0.8
    """

    def __init__(self, periods_per_year: float) -> None:
        self.cagr = Cagr(periods_per_year)
        self.mdd = MaxDrawdown()

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        self.cagr.update(x)
        self.mdd.update(x)
        return self

    def get(self) -> float:
        dd = self.mdd.get()
        return self.cagr.get() / dd if dd > 0 else _NAN

    def __iadd__(self, other: Calmar) -> Self:
        self.cagr += other.cagr
        self.mdd += other.mdd
        return self


class WinRate(Metric):
    """Share of periods with a positive return among periods with a non-zero return.

    >>> WinRate().update([0.1, 0.0, -0.1, 0.2]).get()
    0.6666666666666666
    """

    def __init__(self) -> None:
        self.wins = 0
        self.decided = 0

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        self.wins += int(np.count_nonzero(x > 0))
        self.decided += int(np.count_nonzero(x))
        return self

    def get(self) -> float:
        return self.wins / self.decided if self.decided else _NAN

    def __iadd__(self, other: WinRate) -> Self:
        self.wins += other.wins
        self.decided += other.decided
        return self


class ProfitFactor(Metric):
    """Sum of gains over the absolute sum of losses.

    >>> ProfitFactor().update([0.3, -0.1, -0.1]).get()
    1.4999999999999998
    """

    def __init__(self) -> None:
        self.gains = 0.0
        self.losses = 0.0

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        # fmax/fmin: a NaN counts as neither a gain nor a loss
        self.gains += float(np.fmax(x, 0.0).sum())
        self.losses -= float(np.fmin(x, 0.0).sum())
        return self

    def get(self) -> float:
        if self.losses > 0:
            return self.gains / self.losses
        return math.inf if self.gains > 0 else _NAN

    def __iadd__(self, other: ProfitFactor) -> Self:
        self.gains += other.gains
        self.losses += other.losses
        return self


@lru_cache(maxsize=8)
def _centered_index(n: int) -> tuple[float, np.ndarray, float]:
    """Mean of 1..n, the centered index 1..n minus that mean, and its sum of squares."""
    t = np.arange(1, n + 1, dtype=np.float64)
    mt = float(t.mean())
    dt = t - mt
    return mt, dt, float(dt @ dt)


class Linearity(Metric):
    """R^2 of cumulative log-equity against the period index: 1.0 is a straight line.

    >>> round(Linearity().update([0.01] * 10).get(), 12)
    1.0
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean_t = 0.0
        self.mean_y = 0.0
        self.m_tt = 0.0
        self.m_yy = 0.0
        self.m_ty = 0.0
        self.equity = 1.0
        self.log_equity = 0.0

    def _add(self, n: int, mt: float, my: float, tt: float, yy: float, ty: float) -> None:
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean_t, self.mean_y = n, mt, my
            self.m_tt, self.m_yy, self.m_ty = tt, yy, ty
            return
        total = self.n + n
        dt, dy = mt - self.mean_t, my - self.mean_y
        w = self.n * n / total
        self.m_tt += tt + dt * dt * w
        self.m_yy += yy + dy * dy * w
        self.m_ty += ty + dt * dy * w
        self.mean_t += dt * n / total
        self.mean_y += dy * n / total
        self.n = total

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        if len(x):
            self._update_path(np.multiply.accumulate(np.concatenate([[self.equity], 1.0 + x])))
        return self

    def _update_path(self, path: np.ndarray) -> Self:
        """``path``: the carried equity followed by the equity after each new return."""
        n = len(path) - 1
        y = np.log(path[1:])  # log-equity since the start, fixed by the equity alone
        mt, dt, tt = _centered_index(n)
        my = float(y.mean())
        dy = y - my
        self._add(n, self.n + mt, my, tt, float(dy @ dy), float(dt @ dy))
        self.equity, self.log_equity = float(path[-1]), float(y[-1])
        return self

    def get(self) -> float:
        if self.n < 2 or self.m_tt == 0:
            return _NAN
        if self.m_yy == 0:
            return 1.0 if self.n > 1 else _NAN
        return min(1.0, self.m_ty * self.m_ty / (self.m_tt * self.m_yy))

    def __iadd__(self, other: Linearity) -> Self:
        self._add(
            other.n,
            self.n + other.mean_t,
            self.log_equity + other.mean_y,
            other.m_tt,
            other.m_yy,
            other.m_ty,
        )
        self.log_equity += other.log_equity
        self.equity *= other.equity
        return self


class Exposure(Metric):
    """Mean gross exposure sum_i |w_i(t)| over periods (the mean of what it is fed).

    >>> Exposure().update([1.0, 0.0, 0.5, 0.5]).get()
    0.5
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def update(self, batch: Any) -> Self:
        x = _f64(batch)
        self.total += float(x.sum())
        self.n += len(x)
        return self

    def get(self) -> float:
        return self.total / self.n if self.n else _NAN

    def __iadd__(self, other: Exposure) -> Self:
        self.total += other.total
        self.n += other.n
        return self


class Turnover(Exposure):
    """Annualized turnover: mean per-period sum_i |w_i(t) - w_i(t-1)| times periods a year.

    >>> Turnover(periods_per_year=252).update([1.0, 0.0, 1.0, 0.0]).get()
    126.0
    """

    def __init__(self, periods_per_year: float) -> None:
        super().__init__()
        self.ppy = float(periods_per_year)

    def get(self) -> float:
        return super().get() * self.ppy


class MetricSet:
    """Every result metric of a strategy, under the names results use.

    >>> m = MetricSet(252).update([0.01, -0.005], turnover=[1.0, 0.0], gross=[1.0, 1.0])
    >>> list(m.get())[:4]
    ['total_return', 'cagr', 'volatility', 'sharpe']
    >>> m.finite()["calmar"] == m.get()["calmar"]
    True
    """

    def __init__(self, periods_per_year: float) -> None:
        ppy = float(periods_per_year)
        self.periods_per_year = ppy
        self.returns: dict[str, Metric] = {
            "total_return": TotalReturn(),
            "cagr": Cagr(ppy),
            "volatility": Volatility(ppy),
            "sharpe": Sharpe(ppy),
            "sortino": Sortino(ppy),
            "max_drawdown": MaxDrawdown(),
            "win_rate": WinRate(),
            "profit_factor": ProfitFactor(),
            "linearity": Linearity(),
        }
        self.turnover = Turnover(ppy)
        self.exposure = Exposure()
        self.count = Count()

    def update(
        self,
        returns: Any,
        turnover: Any | None = None,
        gross: Any | None = None,
        equity: np.ndarray | None = None,
    ) -> Self:
        """Consume a batch of returns and, optionally, per-period turnover and gross.

        The equity path and the moments of the batch are computed once and shared by the
        metrics that need them (the same values each metric would compute on its own).
        ``equity``, the equity after each return as the portfolio compounds it from the same
        start (``prod(1 + r)``, left to right), saves computing that path again.
        """
        r = _f64(returns)
        m = self.returns
        total, cagr, mdd, lin = (
            m["total_return"], m["cagr"], m["max_drawdown"], m["linearity"]
        )
        if len(r) and total.equity == cagr.total.equity == mdd.equity == lin.equity:
            start = total.equity
            if (
                equity is not None
                and len(equity) == len(r)
                and equity[0] == start * (1.0 + r[0])
            ):
                path = np.concatenate([[start], equity])
            else:
                path = np.multiply.accumulate(np.concatenate([[start], 1.0 + r]))
            total.equity = cagr.total.equity = float(path[-1])
            cagr.count.n += len(r)
            mdd._update_path(path)
            lin._update_path(path)  # type: ignore[attr-defined]
            mu = float(r.mean())
            m2 = 0.0 if r.min() == r.max() else float(((r - mu) ** 2).sum())
            for name in ("volatility", "sharpe", "sortino"):
                m[name].moments.add(len(r), mu, m2)  # type: ignore[attr-defined]
            neg = np.minimum(r, 0.0)
            m["sortino"].down_sq += float((neg * neg).sum())  # type: ignore[attr-defined]
            pf = m["profit_factor"]
            pf.update(r)
            m["win_rate"].update(r)
        else:
            for metric in m.values():
                metric.update(r)
        self.count.update(r)
        if turnover is not None:
            self.turnover.update(turnover)
        if gross is not None:
            self.exposure.update(gross)
        return self

    def __iadd__(self, other: MetricSet) -> Self:
        for name, metric in self.returns.items():
            metric += other.returns[name]
        self.turnover += other.turnover
        self.exposure += other.exposure
        self.count += other.count
        return self

    def get(self) -> dict[str, float]:
        """Metric name -> value, in result order (see :data:`qmtl.core.contracts.METRIC_NAMES`)."""
        out = {name: metric.get() for name, metric in self.returns.items()}
        dd = out["max_drawdown"]  # calmar from the set's own cagr and drawdown (computed once)
        calmar = out["cagr"] / dd if dd > 0 else _NAN
        out = {
            **{k: out[k] for k in list(out)[:6]},
            "calmar": calmar,
            **{k: out[k] for k in list(out)[6:]},
        }
        out["turnover"] = self.turnover.get() if self.turnover.n else 0.0
        out["exposure"] = self.exposure.get() if self.exposure.n else 0.0
        out["n_bars"] = self.count.get()
        return out

    def finite(self) -> dict[str, float]:
        """Like :meth:`get`, with NaN as 0.0 and +-inf as +-1e9, for wire formats (JSON,
        MetricsUpdate) that refuse non-finite numbers."""
        return {k: finite(v) for k, v in self.get().items()}


def finite(value: float) -> float:
    """``value`` with NaN as 0.0 and +-inf as +-1e9.

    >>> finite(float("inf")), finite(float("nan")), finite(2.5)
    (1000000000.0, 0.0, 2.5)
    """
    if math.isnan(value):
        return 0.0
    if math.isinf(value):
        return math.copysign(1e9, value)
    return value
