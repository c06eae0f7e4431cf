"""Replay = live for a cross-sectional strategy: the same bars of three traded symbols on
unequal calendars and a context symbol, through Kafka (Tansu) one message per bar, give the
backtest's weights, returns and metrics; short targets become orders and fills."""

from __future__ import annotations

import numpy as np
import pytest

from qmtl import Strategy, cs, where
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    activate,
    make_data,
    max_abs_diff,
    publish,
    topic_name,
    world_server,
)


class Book(Strategy):
    """A market-neutral momentum book, halved while the context symbol trends down."""

    symbols = ["AAA", "BBB", "CCC"]
    context = ["SPY"]
    cost_bps = 2.0

    def signal(self, bars):
        book = cs.scale(cs.demean(cs.rank(bars.close.pct_change(4))))
        spy = bars["SPY"].close
        return where(spy > spy.sma(10), book, 0.5 * book)


def unequal(n: int = 150):
    data = make_data(n, symbols=("AAA", "BBB", "CCC", "SPY"), seed=11)
    rng = np.random.default_rng(5)
    out = {}
    for s, b in data.items():
        keep = rng.random(n) > (0.0 if s == "AAA" else 0.15)
        out[s] = {k: v[keep] for k, v in b.items()}
    return out


def test_cross_sectional_live_equals_the_backtest(kafka, tmp_path):
    data = unequal()
    total = sum(len(b["ts"]) for b in data.values())
    topic = topic_name()
    assert publish(kafka.brokers, topic, data) == total
    bt = backtest(Book, data=data)
    with world_server(tmp_path) as url:
        activate(url, "w", "Book")
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", out=tmp_path / "out", max_bars=total,
                           orders_store=str(tmp_path / "orders.db"), warmup=0)
        orders: list = []
        res = run_live(Book, opts, on_order=lambda _sid, intents, fills: orders.append(
            (intents, fills)))
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert max_abs_diff(res.bars.column("weight").to_numpy(),
                        bt.bars.column("weight").to_numpy()) <= 1e-12
    assert set(res.bars.column("symbol").to_pylist()) == {"AAA", "BBB", "CCC"}
    for name, value in bt.metrics.items():
        assert res.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), name
    intents = [i for batch, _ in orders for i in batch]
    assert any(i.target_weight < 0 for i in intents)  # shorts reach the broker
    assert all(i.symbol != "SPY" for i in intents)    # the context symbol is never traded


def test_the_live_graph_is_the_backtest_graph_with_the_cross_sectional_stage():
    from connectors.live.source import LiveBarSource, LiveInput
    from dataflows.compiler import build_flow, core_step_ids
    from dataflows.control import RunControl
    from dataflows.live_flow import build_live_flow
    from qmtl.runner import make_strategy, to_spec

    spec = to_spec(make_strategy(Book, {}), list(Book.symbols), None)
    control = RunControl()
    backtest_flow = build_flow([spec], lambda: iter([]), print, control)
    source = LiveBarSource(lambda _p: None, LiveInput(["AAA", "BBB", "CCC", "SPY"],
                                                      86_400 * 10**9), control)
    live_flow = build_live_flow(spec, source, control, print, None, None)  # type: ignore[arg-type]
    assert core_step_ids(live_flow) == core_step_ids(backtest_flow)
    assert any(i.endswith("evaluate_panel") for i in core_step_ids(live_flow))
