"""Strategies the sweep tests run (top-level classes: a cluster's processes load this file)."""

from __future__ import annotations

from qmtl import Strategy, latch


class SmaCross(Strategy):
    """Long while the fast SMA is above the slow one."""

    symbols = ["AAA", "BBB"]
    interval = "1d"
    fast: int = 10
    slow: int = 50
    cost_bps: float = 1.0

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


class RsiSwing(Strategy):
    """Long from RSI < low until RSI > high, half weight."""

    symbols = ["AAA", "BBB"]
    interval = "1d"
    n: int = 14
    low: float = 30.0
    high: float = 55.0

    def signal(self, bars):
        r = bars.close.rsi(self.n)
        return latch(r < self.low, r > self.high) * 0.5
