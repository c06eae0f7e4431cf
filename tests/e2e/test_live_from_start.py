"""Live = backtest from the same ``--start``, with the defaults: a live run on Tansu that warms
up on the catalog's bars before ``start`` gives, bar for bar, the returns of a backtest over
the same catalog from the same ``start`` (both warm up on the graph's look-back, both start
flat), for a per-symbol strategy with an infinite memory (EMA) and a cross-sectional book."""

from __future__ import annotations

import numpy as np
import pytest

from qmtl import Strategy, cs
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    activate,
    make_data,
    max_abs_diff,
    publish,
    topic_name,
    world_server,
    write_catalog,
)


class Ema(Strategy):
    """Long while the fast EMA is above the slow one (an EMA remembers every bar: a warm-up
    one bar longer changes its values)."""

    symbols = ["GOOG"]
    fast: int = 12
    slow: int = 26
    cost_bps = 1.0

    def signal(self, bars):
        return bars.close.ema(self.fast) > bars.close.ema(self.slow)


class Momentum(Strategy):
    """A market-neutral momentum book over four symbols."""

    symbols = ["AAA", "BBB", "CCC", "DDD"]
    lookback: int = 5
    cost_bps = 1.0

    def signal(self, bars):
        return cs.scale(cs.demean(cs.rank(bars.close.pct_change(self.lookback))))


@pytest.mark.parametrize("strategy", [Ema, Momentum], ids=["per-symbol", "cross-sectional"])
def test_live_from_start_equals_the_backtest_from_start(kafka, tmp_path, strategy):
    data = make_data(260, symbols=tuple(strategy.symbols), seed=21)
    write_catalog(tmp_path / "catalog", data)
    start = int(data[strategy.symbols[0]]["ts"][120])
    after = {s: {k: v[b["ts"] >= start] for k, v in b.items()} for s, b in data.items()}
    total = sum(len(b["ts"]) for b in after.values())
    topic = topic_name()
    assert publish(kafka.brokers, topic, after) == total
    bt = backtest(strategy, data=tmp_path / "catalog", start=start)
    with world_server(tmp_path) as url:
        activate(url, "w", strategy.__name__)
        res = run_live(
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
            ),
        )
    assert res.stats.warmup_bars == bt.data["lookback"]["bars"] * len(strategy.symbols)
    assert np.array_equal(res.ts, bt.ts) and int(res.ts[0]) == start
    assert res.returns[0] == 0.0  # flat on its first bar, as the backtest
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert max_abs_diff(res.equity, bt.equity) <= 1e-12
    assert res.metrics["total_return"] == pytest.approx(bt.metrics["total_return"], abs=1e-12)
