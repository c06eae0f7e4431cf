"""A market-neutral momentum book: each day, rank the demo symbols by their 5-day return,
demean the ranks and scale them so the weights add up to 0 and their absolute values to 1
(long the recent winners, short the recent losers)."""

from qmtl import Strategy, cs


class MomentumBook(Strategy):
    symbols = ["AAPL", "MSFT", "NVDA", "SPY"]
    interval = "1d"
    lookback: int = 5
    cost_bps = 1.0

    def signal(self, bars):
        return cs.scale(cs.demean(cs.rank(bars.close.pct_change(self.lookback))))
