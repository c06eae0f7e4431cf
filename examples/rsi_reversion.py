"""Buy oversold (RSI below `low`), exit once RSI recovers above `high`; half-weight per name."""

from qmtl import Strategy, latch


class RsiReversion(Strategy):
    symbols = ["SPY", "NVDA"]
    interval = "1d"
    n: int = 14
    low: float = 30.0
    high: float = 50.0

    def signal(self, bars):
        rsi = bars.close.rsi(self.n)
        # held from an entry until an exit (an entry wins a tie), state carried across batches
        return 0.5 * latch(rsi < self.low, rsi > self.high)
