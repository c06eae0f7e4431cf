"""Metrics of gains and losses per period and of the positions held: win rate, profit
factor, exposure and turnover.

>>> r = [0.3, -0.1, 0.0]
>>> WinRate().update(r).get(), round(ProfitFactor().update(r).get(), 6)
(0.5, 3.0)
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from dataflows.metrics.base import NAN, Metric, Periods


class WinRate(Metric):
    """Share of periods with a positive return among periods with a non-zero return.

    >>> WinRate().update([0.1, 0.0, -0.1, 0.2]).get()
    0.6666666666666666
    """

    def __init__(self) -> None:
        self.wins = 0
        self.decided = 0

    def update_periods(self, periods: Periods) -> Self:
        x = periods.values
        self.wins += int(np.count_nonzero(x > 0))
        self.decided += int(np.count_nonzero(x))
        return self

    def get(self) -> float:
        return self.wins / self.decided if self.decided else NAN

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

    def update_periods(self, periods: Periods) -> Self:
        x = periods.values
        # fmax/fmin: a NaN counts as neither a gain nor a loss
        self.gains += float(np.fmax(x, 0.0).sum())
        self.losses -= float(np.fmin(x, 0.0).sum())
        return self

    def get(self) -> float:
        if self.losses > 0:
            return self.gains / self.losses
        return math.inf if self.gains > 0 else NAN

    def __iadd__(self, other: ProfitFactor) -> Self:
        self.gains += other.gains
        self.losses += other.losses
        return self


class Exposure(Metric):
    """Mean gross exposure sum_i |w_i(t)| over periods (the mean of what it is fed).

    >>> Exposure().update([1.0, 0.0, 0.5, 0.5]).get()
    0.5
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.n = 0

    def update_periods(self, periods: Periods) -> Self:
        self.total += float(periods.values.sum())
        self.n += len(periods)
        return self

    def get(self) -> float:
        return self.total / self.n if self.n else NAN

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
