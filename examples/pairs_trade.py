"""A pairs trade: long AAPL and short MSFT when their log-price spread is unusually low (its
z-score below -entry), the reverse when it is unusually high, flat once it has reverted."""

from qmtl import Strategy, latch, where


class PairsTrade(Strategy):
    symbols = ["AAPL", "MSFT"]
    interval = "1d"
    lookback: int = 40
    entry: float = 1.5
    exit: float = 0.25
    cost_bps = 1.0

    def signal(self, bars):
        spread = bars["AAPL"].close.log() - bars["MSFT"].close.log()
        z = spread.zscore(self.lookback)
        long_spread = latch(z < -self.entry, z > -self.exit)   # AAPL cheap: long it
        short_spread = latch(z > self.entry, z < self.exit)    # AAPL rich: short it
        pos = 0.5 * (long_spread - short_spread)
        return where(bars.is_symbol("AAPL"), pos, -pos)        # the legs: +pos and -pos
