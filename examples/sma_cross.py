"""Long when the fast moving average is above the slow one, flat otherwise."""

from qmtl import Strategy


class SmaCross(Strategy):
    symbols = ["AAPL", "MSFT"]
    interval = "1d"
    fast: int = 10
    slow: int = 50
    cost_bps = 1.0

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)
