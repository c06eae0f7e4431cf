"""Replay = live for a 1-minute strategy with a daily filter (``bars.at("1d")``): minute bars
of a market with trading hours (390 a day, weekdays only), through Kafka (Tansu) one message
per bar, give the backtest's weights, returns and metrics, and the daily filter both blocks and
lets through trades."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, where
from qmtl.core.times import parse_time
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import activate, max_abs_diff, publish, topic_name, world_server

MINUTE = 60 * 10**9


class DailyFilter(Strategy):
    """examples/daily_filter.py with shorter windows, on two symbols and a context symbol."""

    symbols = ["AAA", "BBB"]
    context = ["SPY"]
    interval = "1m"
    fast: int = 30
    days: int = 2

    def signal(self, bars):
        daily = bars.at("1d").close
        spy = bars["SPY"].at("1d").close
        uptrend = (daily > daily.sma(self.days)) | (spy > spy.sma(self.days))
        return where(uptrend, bars.close > bars.close.sma(self.fast), 0.0)


def session_minutes(days: int) -> np.ndarray:
    """Bar close times of ``days`` weekdays' sessions, 14:31..21:00 UTC (390 bars each)."""
    out, day = [], parse_time("2024-03-04")  # a Monday
    while len(out) < days:
        if (day // (86_400 * 10**9) + 3) % 7 < 5:  # 1970-01-01 was a Thursday
            out.append(day + (14 * 60 + 31 + np.arange(390, dtype=np.int64)) * MINUTE)
        day += 86_400 * 10**9
    return np.concatenate(out)


def session_data(days: int = 7) -> dict:
    ts = session_minutes(days)
    data = {}
    for i, s in enumerate(("AAA", "BBB", "SPY")):
        b = generate_bars(len(ts), interval="1m", seed=40 + i, vol=0.6)
        data[s] = {**b, "ts": ts}
    return data


def test_daily_filter_live_equals_the_backtest(kafka, tmp_path):
    data = session_data()
    total = sum(len(b["ts"]) for b in data.values())
    topic = topic_name()
    assert publish(kafka.brokers, topic, data) == total
    bt = backtest(DailyFilter, data=data)
    with world_server(tmp_path) as url:
        activate(url, "w", "DailyFilter")
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", out=tmp_path / "out", max_bars=total,
                           orders_store=str(tmp_path / "orders.db"), warmup=0)
        res = run_live(DailyFilter, opts)
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    w_live = res.bars.column("weight").to_numpy()
    w_bt = bt.bars.column("weight").to_numpy()
    assert max_abs_diff(w_live, w_bt) <= 1e-12
    assert res.bars.column("symbol").to_pylist() == bt.bars.column("symbol").to_pylist()
    for name, value in bt.metrics.items():
        assert res.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), name
    # the filter matters: no trade on the first days (no daily average yet), trades later,
    # and later some minutes with a fast signal but a falling daily trend stay flat
    ts = bt.bars.column("ts").to_numpy()
    first_days = ts < data["AAA"]["ts"][2 * 390]
    assert (w_bt[first_days] == 0).all()
    assert (w_bt[~first_days] > 0).sum() > 100
    sym = np.array(bt.bars.column("symbol").to_pylist())
    blocked = 0
    for s in DailyFilter.symbols:
        close = pd.Series(data[s]["close"])
        fast = (close > close.rolling(DailyFilter.fast).mean()).to_numpy()
        blocked += int((fast & (w_bt[sym == s] == 0) & ~first_days[sym == s]).sum())
    assert blocked > 100
