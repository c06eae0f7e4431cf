"""Risk and risk-adjusted metrics: volatility, Sharpe, Sortino, max drawdown, Calmar.

Annualization takes ``periods_per_year`` (252 for daily bars, calendar time otherwise:
:func:`qmtl.core.intervals.periods_per_year`).

>>> r = [0.25, -0.5, 0.5]
>>> round(Sharpe(periods_per_year=1).update(r).get(), 6), MaxDrawdown().update(r).get()
(0.160128, 0.5)
"""

from __future__ import annotations

import bisect
import math
from typing import Self

import numpy as np

from dataflows.metrics.base import NAN, Metric, Moments, Periods
from dataflows.metrics.returns import Cagr


class MomentMetric(Metric):
    """A metric of the mean and variance of returns (mergeable :class:`Moments`).

    >>> Volatility(periods_per_year=1).update([1.0, 3.0]).moments.mean
    2.0
    """

    def __init__(self, periods_per_year: float) -> None:
        self.ppy = float(periods_per_year)
        self.moments = Moments()

    def update_periods(self, periods: Periods) -> Self:
        self.moments.merge(periods.moments)
        return self

    def __iadd__(self, other: MomentMetric) -> Self:
        self.moments.merge(other.moments)
        return self


class Volatility(MomentMetric):
    """Annualized standard deviation of returns (ddof=1).

    >>> round(Volatility(periods_per_year=4).update([0.01, -0.01]).get(), 6)
    0.028284
    """

    def get(self) -> float:
        return self.moments.std() * math.sqrt(self.ppy)


class Sharpe(MomentMetric):
    """Annualized Sharpe ratio, risk-free 0: mean / std(ddof=1) * sqrt(periods_per_year).

    >>> round(Sharpe(periods_per_year=1).update([0.1, 0.3]).get(), 6)
    1.414214
    """

    def get(self) -> float:
        sd = self.moments.std()
        if not sd > 0:
            return NAN
        return self.moments.mean / sd * math.sqrt(self.ppy)


class Sortino(MomentMetric):
    """Annualized Sortino ratio (as empyrical, required return 0): mean * ppy divided by
    sqrt(mean(min(r, 0)^2) * ppy).

    >>> round(Sortino(periods_per_year=1).update([0.1, -0.1, 0.2]).get(), 6)
    1.154701
    """

    def __init__(self, periods_per_year: float) -> None:
        super().__init__(periods_per_year)
        self.down_sq = 0.0

    def update_periods(self, periods: Periods) -> Self:
        super().update_periods(periods)
        self.down_sq += periods.downside_sq
        return self

    def get(self) -> float:
        n = self.moments.n
        if n == 0:
            return NAN
        downside = math.sqrt(self.down_sq / n) * math.sqrt(self.ppy)
        if downside == 0:
            return NAN
        return self.moments.mean * self.ppy / downside

    def __iadd__(self, other: Sortino) -> Self:
        super().__iadd__(other)
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

    def low_before(self, prior_peak: float) -> float:
        """Lowest equity before these periods first rise above ``prior_peak`` (in their own
        units, equity 1.0 at their start).

        >>> MaxDrawdown().update([-0.5, 2.0, -0.9]).low_before(1.2)
        0.5
        """
        k = bisect.bisect_right(self.thresholds, prior_peak)
        return self.lows[k] if k < len(self.lows) else self.low

    def update_periods(self, periods: Periods) -> Self:
        if not len(periods):
            return self
        # strictly sequential from the carried equity, peak and low: any split is bit-identical
        eq = periods.path_from(self.equity)[1:]
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
        cross = 1.0 - other.low_before(prior) / prior
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

    def update_periods(self, periods: Periods) -> Self:
        self.cagr.update_periods(periods)
        self.mdd.update_periods(periods)
        return self

    def get(self) -> float:
        return ratio(self.cagr.get(), self.mdd.get())

    def __iadd__(self, other: Calmar) -> Self:
        self.cagr += other.cagr
        self.mdd += other.mdd
        return self


def ratio(cagr: float, drawdown: float) -> float:
    """The Calmar ratio of a CAGR and a max drawdown (NaN without a drawdown).

    >>> ratio(0.2, 0.1), ratio(0.2, 0.0)
    (2.0, nan)
    """
    return cagr / drawdown if drawdown > 0 else NAN
