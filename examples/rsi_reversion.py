"""Buy oversold (RSI below `low`), exit once RSI recovers above `high`; half-weight per name."""

from qmtl import Operator, Strategy


class Hold(Operator):
    """A latch: 1 after `enter` fires, until `exit` fires (state carried across batches)."""

    def __init__(self):
        self.state = 0.0

    def update(self, enter, exit):
        import numpy as np

        out = np.empty_like(enter)
        for i in range(len(enter)):
            if enter[i] > 0:
                self.state = 1.0
            elif exit[i] > 0:
                self.state = 0.0
            out[i] = self.state
        return out


class RsiReversion(Strategy):
    symbols = ["SPY", "NVDA"]
    interval = "1d"
    n: int = 14
    low: float = 30.0
    high: float = 50.0

    def signal(self, bars):
        rsi = bars.close.rsi(self.n)
        return 0.5 * Hold()(rsi < self.low, rsi > self.high)
