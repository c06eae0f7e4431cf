"""Replay = live: the same bars through Kafka (Tansu), one message per bar, give what the
backtest gives, on the same compiled graph; history hands over to the topic without gap or
duplicate."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from connectors.live.source import HandOffGap, LiveBarSource, LiveInput
from dataflows.compiler import build_flow, core_step_ids
from dataflows.control import RunControl
from dataflows.live_flow import build_live_flow
from qmtl.live import LiveError, LiveOptions, run_live
from qmtl.runner import backtest, make_strategy, to_spec
from tests import procs
from tests.e2e.live_helpers import (
    Cross,
    activate,
    make_data,
    max_abs_diff,
    publish,
    read_json,
    slice_data,
    topic_name,
    world_server,
    write_catalog,
)

DATA = make_data(300)
FIRST_LIVE = int(DATA["AAA"]["ts"][200])
"""The first live bar of the hand-off tests: a backtest from it is what they must equal."""


def live(kafka, tmp_path, url, topic, max_bars, **kw):
    opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                       data=tmp_path / "catalog", out=tmp_path / "out", max_bars=max_bars,
                       orders_store=str(tmp_path / "orders.db"), **kw)
    return run_live(Cross, opts)


def test_live_on_kafka_equals_the_backtest(kafka, tmp_path):
    topic = topic_name()
    assert publish(kafka.brokers, topic, DATA) == 600
    bt = backtest(Cross, data=DATA)
    with world_server(tmp_path) as url:
        res = live(kafka, tmp_path, url, topic, max_bars=600, warmup=0)
        view = httpx.get(f"{url}/worlds/w/strategies/Cross").json()
    assert res.n_bars == len(bt.returns) == 300
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert max_abs_diff(res.equity, bt.equity) <= 1e-12
    assert max_abs_diff(res.bars.column("weight").to_numpy(),
                        bt.bars.column("weight").to_numpy()) <= 1e-12
    assert res.bars.column("symbol").to_pylist() == bt.bars.column("symbol").to_pylist()
    for name, value in bt.metrics.items():
        assert res.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), name
    # the run folder holds what a backtest writes, with the live run's identity
    doc = read_json(tmp_path / "out" / "metrics.json")
    assert doc["mode"] == "paper" and doc["run_id"] == res.run_id
    assert doc["metrics"]["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-12)
    # MetricsUpdates as the bars arrived (at most one per bar), keyed by the bar count; their
    # returns, end to end, are the run's; the world got them all
    seqs = [u.seq for u in res.updates]
    assert seqs == sorted(set(seqs)) and seqs == [u.n_bars for u in res.updates]
    assert seqs[-1] == 300
    pairs = [p for u in res.updates for p in u.returns]
    assert np.array_equal([r for _, r in pairs], res.returns)
    assert np.array_equal([t for t, _ in pairs], res.ts)  # each with its bar's close time
    assert view["n_bars"] == 300
    assert view["metrics"]["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-9)


def test_the_live_graph_is_the_backtest_graph(tmp_path):
    s = make_strategy(Cross, {})
    spec = to_spec(s, ["AAA", "BBB"], None)
    control = RunControl()
    backtest_flow = build_flow([spec], lambda: iter([]), print, control)
    source = LiveBarSource(lambda _p: None, LiveInput(["AAA", "BBB"], 86_400 * 10**9), control)
    live_flow = build_live_flow(spec, source, control, print, None, None)  # type: ignore[arg-type]
    assert core_step_ids(live_flow) == core_step_ids(backtest_flow)
    assert len(core_step_ids(live_flow)) == 4


STRATEGY_FILE = """
import numpy as np
from qmtl import Operator, Strategy

class Latch(Operator):
    def __init__(self):
        self.state = 0.0
    def update(self, enter, leave):
        out = np.empty_like(enter)
        for i in range(len(enter)):
            self.state = 1.0 if enter[i] > 0 else 0.0 if leave[i] > 0 else self.state
            out[i] = self.state
        return out

class Rsi(Strategy):
    symbols = ["AAA"]
    def signal(self, bars):
        rsi = bars.close.rsi(14)
        return Latch()(rsi < 30, rsi > 50)
"""

NODE_IDS = """
import sys
from qmtl.loader import load_strategy
from qmtl.runner import make_strategy, to_spec
from dataflows.compiler import build_program
s = make_strategy(load_strategy(sys.argv[1]), {})
print(" ".join(build_program([to_spec(s, ["AAA"], None)]).node_ids))
"""


def test_node_ids_are_the_same_in_every_process(tmp_path):
    """A restarted live run (another process, another hash seed) compiles the graph the
    backtest compiled, user operators included: the node content ids agree."""
    import os
    import sys

    path = tmp_path / "rsi.py"
    path.write_text(STRATEGY_FILE)
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        got = procs.run([sys.executable, "-c", NODE_IDS, str(path)], env=env,
                             capture_output=True, text=True, timeout=60, check=True)
        runs.append(got.stdout.split())
    assert runs[0] == runs[1] and len(runs[0]) >= 5


def test_history_hands_over_to_the_topic_without_duplicates(kafka, tmp_path):
    """The catalog has bars 0..199, the topic 150..299: the 50 in both are used once."""
    topic = topic_name()
    write_catalog(tmp_path / "catalog", slice_data(DATA, 0, 200))
    publish(kafka.brokers, topic, slice_data(DATA, 150, 300))
    bt = backtest(Cross, data=DATA, start=FIRST_LIVE)
    with world_server(tmp_path) as url:
        res = live(kafka, tmp_path, url, topic, max_bars=200)
    assert res.stats.overlap == 100  # 50 bars x 2 symbols already in history
    assert res.stats.warmup_bars == 2 * (Cross.slow - 1)  # the look-back, per symbol
    assert np.array_equal(res.ts, bt.ts)
    # warm on the history, flat at the first live bar: the backtest from that bar
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12


def test_a_gap_between_history_and_topic_is_filled_from_the_catalog(kafka, tmp_path):
    """The catalog is backfilled while the run waits for bars: the gap between the history
    the run started with and the first live bar is read from it."""
    import threading

    topic = topic_name()
    cat = write_catalog(tmp_path / "catalog", slice_data(DATA, 0, 200))
    started = threading.Event()
    box: dict = {}
    bt = backtest(Cross, data=DATA, start=FIRST_LIVE)
    with world_server(tmp_path) as url:
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", max_bars=180,
                           orders_store=str(tmp_path / "o.db"))
        run = threading.Thread(target=lambda: box.update(res=run_live(
            Cross, opts, on_started=lambda _info: started.set())), daemon=True)
        run.start()
        assert started.wait(30)
        for s, b in slice_data(DATA, 200, 210).items():  # the missing bars arrive
            cat.write(s, "1d", b)
        publish(kafka.brokers, topic, slice_data(DATA, 210, 300))
        run.join(60)
    res = box["res"]
    assert res.stats.gap_filled == 20
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12


def test_history_the_catalog_lacks_is_backfilled_from_the_origin(kafka, tmp_path):
    """Seamless: the catalog holds bars 0..199, a backfill origin 0..209, the topic 210..:
    the gap between the history and the first live bar is fetched from the origin (and
    written to the catalog), and the run goes on as if it had never been there."""
    from tests.connectors.conftest import write_origin_file

    topic = topic_name()
    write_catalog(tmp_path / "catalog", slice_data(DATA, 0, 200))
    for s, b in slice_data(DATA, 0, 210).items():
        write_origin_file(tmp_path / "origin", s, "1d", b)
    publish(kafka.brokers, topic, slice_data(DATA, 210, 300))
    bt = backtest(Cross, data=DATA, start=FIRST_LIVE)
    with world_server(tmp_path) as url:
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", origin=f"folder:{tmp_path / 'origin'}",
                           max_bars=180, orders_store=str(tmp_path / "o.db"))
        res = run_live(Cross, opts)
    assert res.stats.gap_filled == 20 and res.stats.overlap == 0
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    from connectors.data.catalog import Catalog

    written = Catalog(tmp_path / "catalog").read("AAA", "1d")["ts"]
    assert written[-1] == DATA["AAA"]["ts"][209]  # the backfill was written to the catalog


def test_a_gap_that_cannot_be_filled_is_an_error_naming_it(kafka, tmp_path):
    topic = topic_name()
    write_catalog(tmp_path / "catalog", slice_data(DATA, 0, 200))
    publish(kafka.brokers, topic, slice_data(DATA, 210, 300))
    with world_server(tmp_path) as url, pytest.raises(HandOffGap) as err:
        live(kafka, tmp_path, url, topic, max_bars=180)
    text = str(err.value)
    assert "AAA" in text and "10 bars" in text and "2015-" in text


def test_an_unreachable_broker_or_world_is_a_clear_error(tmp_path):
    with world_server(tmp_path) as url:
        opts = LiveOptions(brokers="127.0.0.1:1", topic="bars", world="w", url=url,
                           paper=True, data=tmp_path / "c", max_bars=1, connect_timeout=1.0)
        with pytest.raises(LiveError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
            run_live(Cross, opts)
    opts = LiveOptions(world="w", url="http://127.0.0.1:1", paper=True, data=tmp_path / "c",
                       max_bars=1)
    write_catalog(tmp_path / "c", DATA)
    with pytest.raises(LiveError, match="cannot reach the world service"):
        run_live(Cross, opts)


def test_an_active_strategy_orders_every_change_of_its_target(kafka, tmp_path):
    """Active from the first bar (weight 1): one order per change of each symbol's capped
    target weight, sized weight x capital / close, filled at that bar's close."""
    topic = topic_name()
    publish(kafka.brokers, topic, DATA)
    bt = backtest(Cross, data=DATA)
    with world_server(tmp_path) as url:
        activate(url, "w", "Cross")
        res = live(kafka, tmp_path, url, topic, max_bars=600, warmup=0)
    rows = bt.bars.to_pydict()
    capital = 1_000_000.0
    expected, last = [], {}
    for ts, sym, w in zip(rows["ts"], rows["symbol"], rows["weight"], strict=True):
        if abs(w - last.get(sym, 0.0)) > 1e-9:
            close = DATA[sym]["close"][DATA[sym]["ts"] == ts][0]
            expected.append((sym, ts, w, w * capital / close))
            last[sym] = w
    got = [(o.symbol, o.ts, o.target_weight, o.target_qty) for o in res.orders]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert max_abs_diff([g[2] for g in got], [e[2] for e in expected]) <= 1e-12
    assert max_abs_diff([g[3] for g in got], [e[3] for e in expected]) <= 1e-6
    # each fill at its signal bar's close (the default execution rule, `close`, as the
    # backtest trades); the position is the last filled target
    for f in res.fills:
        assert f.price == DATA[f.symbol]["close"][DATA[f.symbol]["ts"] == f.ts][0]
    for sym in DATA:  # an order of the last bar fills at its close too
        held = [o for o in res.orders if o.symbol == sym]
        assert res.positions.get(sym, 0.0) == pytest.approx(held[-1].target_qty if held else 0.0)


def test_two_workers_give_what_one_gives(kafka, tmp_path):
    topic = topic_name()
    publish(kafka.brokers, topic, DATA)
    bt = backtest(Cross, data=DATA)
    with world_server(tmp_path) as url:
        activate(url, "w", "Cross")
        res = live(kafka, tmp_path, url, topic, max_bars=600, warmup=0, workers=2)
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert res.metrics["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-12)
    keys = [(o.symbol, o.ts) for o in res.orders]
    assert len(keys) == len(set(keys)) > 10


def test_without_paper_orders_go_to_the_orders_topic(kafka, tmp_path):
    """Live (no paper broker): each order is stored once and published to the orders topic,
    keyed by its idempotency key, for an execution service to fill; no fills are made up."""
    import json

    from qmtl.core.contracts import OrderIntent
    from tests.e2e.live_helpers import consume

    topic = topic_name()
    publish(kafka.brokers, topic, DATA)
    with world_server(tmp_path) as url:
        activate(url, "w", "Cross")
        res = run_live(Cross, LiveOptions(
            brokers=kafka.brokers, topic=topic, world="w", url=url, paper=False,
            data=tmp_path / "none", warmup=0, max_bars=600, orders_topic=f"{topic}.orders",
            orders_store=str(tmp_path / "o.db")))
    assert res.fills == [] and res.positions == {} and len(res.orders) > 10
    sent = consume(kafka.brokers, f"{topic}.orders")
    got = {k.decode(): OrderIntent.model_validate(json.loads(v)) for k, v in sent}
    assert len(got) == len(sent) == len(res.orders)  # each once
    assert got == {f"w/Cross/{o.symbol}/{o.ts}": o for o in res.orders}
