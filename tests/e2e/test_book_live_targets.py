"""A single live run posts its targets (`--targets-topic`) through Tansu: the world's book
reads them and trades the run's own target weights, at the bars' closes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.brokers.paper import PaperBroker
from qmtl.book_run.process import Loop
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.book_run.targets import KafkaTargets
from qmtl.live import LiveOptions, run_live
from tests.e2e.live_helpers import Cross, activate, make_data, publish, topic_name, world_server


def test_a_live_runs_targets_reach_the_book(kafka, tmp_path: Path) -> None:
    data = make_data(120)
    total = sum(len(b["ts"]) for b in data.values())
    bars, targets = topic_name(), f"targets-{time.time_ns()}"
    assert publish(kafka.brokers, bars, data) == total
    with world_server(tmp_path, "wl") as url:
        activate(url, "wl", "Cross")
        opts = LiveOptions(
            brokers=kafka.brokers,
            topic=bars,
            world="wl",
            url=url,
            paper=True,
            data=tmp_path / "catalog",
            max_bars=total,
            warmup=0,
            orders_store=str(tmp_path / "o.db"),
            targets_topic=targets,
        )
        res = run_live(Cross, opts)
    src = KafkaTargets(kafka.brokers, "wl", targets)
    try:
        got = []
        end = time.monotonic() + 30
        while len(got) < total and time.monotonic() < end:
            got += src.poll(0.5)
    finally:
        src.close()
    assert len(got) == total  # one update per bar row, every symbol's latest weight in it
    assert {u.strategy_id for u in got} == {res.strategy}
    last = got[-1]
    weights = res.bars.column("weight").to_numpy()
    symbols = res.bars.column("symbol").to_pylist()
    want = {s: float(w) for s, w in zip(symbols, weights, strict=True)}  # each one's last
    assert last.weights == pytest.approx(want)
    assert any(w for w in want.values())  # the strategy holds something: not all flat
    # the book on these targets holds the run's weights (one strategy, world weight 1)
    svc = BookService(
        open_book_store(str(tmp_path / "b.db")),
        PaperBroker(cash=1e6),
        BookConfig("wl", symbols=tuple(sorted(want))),
    )
    svc.start()
    feed = type("Feed", (), {"poll": lambda self: got, "close": lambda self: None})()
    Loop(svc, feed, weights={res.strategy: 1.0}).once()
    for sym, w in want.items():
        qty = sum(o.qty for o in svc.led.orders.values() if o.symbol == sym)
        assert qty == pytest.approx(w * 1e6 / last.prices[sym])
