"""Metrics of the compounded equity: count, total return, CAGR and the linearity of growth.

>>> r = [0.1, 0.1]
>>> Count().update(r).get(), round(TotalReturn().update(r).get(), 10)
(2.0, 0.21)
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Self

import numpy as np

from dataflows.metrics.base import NAN, Metric, Periods


class Count(Metric):
    """Number of periods.

    >>> Count().update([0.1, 0.2]).get()
    2.0
    """

    def __init__(self) -> None:
        self.n = 0

    def update_periods(self, periods: Periods) -> Self:
        self.n += len(periods)
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

    def update_periods(self, periods: Periods) -> Self:
        if len(periods):
            self.equity = float(periods.path_from(self.equity)[-1])
        return self

    def get(self) -> float:
        return self.equity - 1.0

    def __iadd__(self, other: TotalReturn) -> Self:
        self.equity *= other.equity
        return self


class Cagr(Metric):
    """Compound annual growth rate: equity ** (periods_per_year / n) - 1; +inf when that
    is beyond a float (a short run of fast bars that gained).

    >>> round(Cagr(periods_per_year=2).update([0.1, 0.1]).get(), 10)
    0.21
    >>> Cagr(periods_per_year=525_600).update([0.05] * 10).get()
    inf
    """

    def __init__(self, periods_per_year: float) -> None:
        self.ppy = float(periods_per_year)
        self.total, self.count = TotalReturn(), Count()

    @property
    def equity(self) -> float:
        """The equity after the periods so far (1.0 before any).

        >>> Cagr(252).update([0.5]).equity
        1.5
        """
        return self.total.equity

    def update_periods(self, periods: Periods) -> Self:
        self.total.update_periods(periods)
        self.count.update_periods(periods)
        return self

    def get(self) -> float:
        n = self.count.n
        if n == 0 or self.total.equity <= 0:
            return NAN if n == 0 else -1.0
        try:
            return self.total.equity ** (self.ppy / n) - 1.0
        except OverflowError:
            return math.inf

    def __iadd__(self, other: Cagr) -> Self:
        self.total += other.total
        self.count += other.count
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

    def update_periods(self, periods: Periods) -> Self:
        if not len(periods):
            return self
        path = periods.path_from(self.equity)
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
            return NAN
        if self.m_yy == 0:
            return 1.0 if self.n > 1 else NAN
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


