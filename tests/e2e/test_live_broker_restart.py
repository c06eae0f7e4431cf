"""The Kafka broker restarts mid-run and loses its topics (Tansu keeps them in memory): the run
notices, reconnects, reads the recreated topic from its start once bars are published again,
uses no bar twice, and ends where an uninterrupted run ends; the orders stored meanwhile are
published once the broker is back."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from connectors.live.order_store import open_order_store
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.conftest import Tansu
from tests.e2e.live_helpers import (
    Cross,
    activate,
    make_data,
    max_abs_diff,
    publish,
    slice_data,
    topic_name,
    wait_for,
    world_server,
)

N = 200
DATA = make_data(N, seed=21)


def test_a_broker_that_restarts_empty_is_survived(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qmtl")
    broker = Tansu().start()
    topic = topic_name()
    out = tmp_path / "out"
    try:
        publish(broker.brokers, topic, slice_data(DATA, 0, 120))
        with world_server(tmp_path) as url:
            activate(url, "w", "Cross")
            opts = LiveOptions(brokers=broker.brokers, topic=topic, world="w", url=url,
                               paper=True, data=tmp_path / "none", warmup=0, out=out,
                               max_bars=2 * N, orders_store=str(tmp_path / "orders.db"),
                               recovery_dir=tmp_path / "recovery", snapshot_interval=0.2)
            box: dict = {}
            run = threading.Thread(target=lambda: box.update(res=run_live(Cross, opts)),
                                   daemon=True)
            run.start()
            done = lambda k: (out / ".series.bin").is_file() and (  # noqa: E731
                (out / ".series.bin").stat().st_size // 24 >= k)
            assert wait_for(lambda: done(120), 30), "the first bars were not used"
            broker.stop()
            time.sleep(2.0)
            broker.start()  # same port, no topics
            # the run notices the recreated topic before bars come again
            assert wait_for(lambda: any("recreated" in r.getMessage() for r in caplog.records),
                            30), "the recreated topic went unnoticed"
            # the publisher sends the rest, repeating the last 20 bars it had sent
            publish(broker.brokers, topic, slice_data(DATA, 100, N))
            run.join(60)
            assert not run.is_alive()
        res = box["res"]
    finally:
        broker.stop()
    bt = backtest(Cross, data=DATA)
    assert res.stats.live_bars == 2 * N
    assert res.stats.dead_letters == 40  # the repeated bars: duplicates, used once
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert any("waiting for it to come back" in r.getMessage() for r in caplog.records)
    keys = [(o.symbol, o.ts) for o in res.orders]
    assert len(keys) == len(set(keys)) > 5
    # every order and fill stored was published (the relay retried through the outage)
    store = open_order_store(str(tmp_path / "orders.db"))
    assert store.unpublished("orders") == [] and store.unpublished("fills") == []
