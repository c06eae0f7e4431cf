"""A 1-minute trend follower that trades only while the daily trend is up: long when the
close is above its 60-minute average and yesterday's daily close is above its 3-day average.

``bars.at("1d")`` resamples the minute bars into daily ones; a daily bar is visible from the
first minute at or after its close, never before."""

from qmtl import Strategy, where


class DailyFilter(Strategy):
    symbols = ["SPY"]
    interval = "1m"
    fast: int = 60
    days: int = 3

    def signal(self, bars):
        daily = bars.at("1d").close
        uptrend = daily > daily.sma(self.days)
        return where(uptrend, bars.close > bars.close.sma(self.fast), 0.0)
