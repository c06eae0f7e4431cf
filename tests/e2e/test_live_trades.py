"""Live market data in the flow (issue 27 §1): a live run on a Kafka topic of trades
(arriving out of order within the allowed lateness, some delivered twice) gives returns
bit-identical to a backtest over the catalog bars made from the same trades, for a 1m
strategy; and a 1h strategy fed 1m bars (resampled in the flow) gives the backtest's
returns over the catalog's 1h resampling of those bars."""

from __future__ import annotations

import numpy as np

from connectors.data.catalog import Catalog
from connectors.live.bar_codec import encode_bar
from connectors.live.kafka_io import publish_messages
from connectors.live.trade_codec import encode_trade
from dataflows.resample import resample
from dataflows.trade_bars import trades_to_bars
from qmtl import Strategy
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import activate, topic_name, world_server

S = 10**9
M = 60 * S
T0 = 1_704_067_200 * S  # 2024-01-01 00:00 UTC


class Minute(Strategy):
    symbols = ["BTCUSDT"]
    interval = "1m"
    cost_bps = 2.0

    def signal(self, bars):
        return bars.close.ema(4) > bars.close.ema(12)


class Hour(Minute):
    interval = "1h"

    def signal(self, bars):
        return bars.close.sma(3) > bars.close.sma(8)


def make_trades(minutes: int, seed: int = 7):
    """Trades every minute (1 to 6 a minute, at ms times), a random walk of prices."""
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 7, minutes)
    minute = np.repeat(np.arange(minutes), per)
    ts = T0 + minute * M + rng.integers(1, 60_000, len(minute)) * 10**6
    ts.sort()
    price = np.round(42_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(ts)))), 2)
    size = np.round(rng.uniform(0.001, 2, len(ts)), 3)
    return {
        "ts": ts,
        "price": price,
        "size": size,
        "id": np.array([str(i) for i in range(len(ts))], dtype=object),
    }


def run(kafka, tmp_path, strategy, topic, total, start, **kw):
    with world_server(tmp_path) as url:
        activate(url, "w", strategy.__name__)
        return run_live(
            strategy,
            LiveOptions(
                brokers=kafka.brokers,
                topic=topic,
                world="w",
                url=url,
                paper=True,
                data=tmp_path / "catalog",
                start=start,
                max_bars=total,
                orders_store=str(tmp_path / "orders.db"),
                **kw,
            ),
        )


def test_a_live_run_on_trades_equals_the_backtest_over_their_catalog_bars(kafka, tmp_path):
    trades = make_trades(300)
    bars = trades_to_bars(trades, "1m")
    assert len(bars["ts"]) == 300
    # the last bar never closes live (no later trade): the catalog stops before it too
    Catalog(tmp_path / "catalog").write("BTCUSDT", "1m", {k: v[:-1] for k, v in bars.items()})
    start = int(bars["ts"][100])
    live = trades["ts"] > start - M  # the trades of the bars from start
    n = int(live.sum())
    rng = np.random.default_rng(3)
    lateness = 5 * S
    arrival = np.flatnonzero(live)[
        np.argsort(trades["ts"][live] + rng.integers(0, lateness, n), kind="stable")
    ]
    again = rng.choice(len(arrival) - 50, 25, replace=False)  # delivered twice, soon after
    order = np.insert(arrival, again + 3, arrival[again])
    messages = [
        ("BTCUSDT", encode_trade({k: trades[k][i] for k in ("ts", "price", "size", "id")}))
        for i in order
    ]
    topic = topic_name()
    assert publish_messages(kafka.brokers, topic, messages) == len(order)
    bt = backtest(Minute, data=tmp_path / "catalog", start=start)
    total = len(bt.ts)
    res = run(kafka, tmp_path, Minute, topic, total, start, feed="trades", lateness=5.0)
    counts = res.stats.feed.counts()
    assert counts["duplicates"] == 25 and counts["late_dropped"] == 0
    assert np.array_equal(res.ts, bt.ts) and int(res.ts[0]) == start
    assert np.array_equal(res.returns, bt.returns)  # bit-identical
    assert np.array_equal(res.equity, bt.equity)


def test_a_1h_strategy_fed_1m_bars_equals_the_backtest_over_the_catalog_resampling(kafka, tmp_path):
    rng = np.random.default_rng(5)
    n = 40 * 60
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    m1 = {
        "ts": T0 + np.arange(1, n + 1) * M,
        "open": close * (1 + rng.normal(0, 1e-4, n)),
        "high": close * 1.001,
        "low": close * 0.999,
        "close": close,
        "volume": rng.uniform(1, 5, n),
    }
    m1["high"] = np.maximum(m1["high"], m1["open"])
    m1["low"] = np.minimum(m1["low"], m1["open"])
    h1 = resample(m1, "1m", "1h")
    assert len(h1["ts"]) == 40
    Catalog(tmp_path / "catalog").write("BTCUSDT", "1h", h1)
    start = int(h1["ts"][20])
    feed = m1["ts"] > start - 3600 * S
    topic = topic_name()
    messages = [
        ("BTCUSDT", encode_bar({k: v[i] for k, v in m1.items()})) for i in np.flatnonzero(feed)
    ]
    assert publish_messages(kafka.brokers, topic, messages) == len(messages)
    bt = backtest(Hour, data=tmp_path / "catalog", start=start)
    res = run(kafka, tmp_path, Hour, topic, len(bt.ts), start, feed_interval="1m")
    assert len(bt.ts) == 20
    assert np.array_equal(res.ts, bt.ts)
    assert np.array_equal(res.returns, bt.returns)
    assert np.array_equal(res.equity, bt.equity)
