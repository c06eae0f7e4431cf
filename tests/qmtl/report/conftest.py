"""Small real backtests to report on: two symbols in step, and two whose bars differ."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest
from qmtl.result import BacktestResult


class Cross(Strategy):
    """Long while the fast SMA is above the slow one (weights halve when both are long)."""

    symbols = ["AAA", "BBB"]
    fast: int = 10
    slow: int = 40
    cost_bps = 5.0

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def bars(n: int = 700) -> dict[str, dict[str, np.ndarray]]:
    """Two symbols with a bar at every time."""
    return {"AAA": generate_bars(n, seed=11), "BBB": generate_bars(n, seed=12)}


@pytest.fixture(scope="session")
def result() -> BacktestResult:
    """A backtest with costs over two symbols in step (700 daily bars)."""
    return backtest(Cross, data=bars())


@pytest.fixture(scope="session")
def gappy() -> BacktestResult:
    """A backtest where BBB lacks every third bar, without costs."""
    data = bars(500)
    keep = np.arange(500) % 3 != 1
    data["BBB"] = {k: v[keep] for k, v in data["BBB"].items()}
    return backtest(Cross, data=data, cost_bps=0.0)
