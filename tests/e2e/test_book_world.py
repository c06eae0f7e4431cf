"""The book on Tansu and a real world server: two strategies the world made active, long and
short one symbol, post their targets to the targets topic; the book sends one net order,
its paper fill updates both strategies' records by their shares; the world force-deleted,
no further order leaves on its last activation."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Producer

from connectors.brokers.paper import PaperBroker
from connectors.live.world_link import ActivationSubscriber
from dataflows.gate import ActivationBook
from qmtl.book_run.process import Loop
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.book_run.targets import KafkaTargets, TargetUpdate, publish_targets
from tests.e2e.live_helpers import activate, wait_for, world_server

W = "bookw"


def post(p: Producer, topic: str, seq: int, price: float, long_w: float = 0.8) -> None:
    for sid, w in (("long", long_w), ("short", -0.5)):
        publish_targets(
            p,
            TargetUpdate(
                world=W, strategy_id=sid, seq=seq, ts=seq, weights={"BTC": w}, prices={"BTC": price}
            ),
            topic,
        )
    p.flush(10)


def test_two_strategies_one_net_order_shared_fill_and_a_deleted_world(
    kafka, tmp_path: Path
) -> None:
    topic = f"targets-{time.time_ns()}"
    p = Producer({"bootstrap.servers": kafka.brokers})
    with world_server(tmp_path, W) as url:
        activate(url, W, "long")
        activate(url, W, "short")
        snap = {
            r["strategy_id"]: r
            for r in httpx.get(f"{url}/worlds/{W}/activation").json()["strategies"]
        }
        wl, ws = snap["long"]["weight"], snap["short"]["weight"]
        assert snap["long"]["active"] and snap["short"]["active"] and wl > 0 and ws > 0
        act = ActivationBook(W)
        sub = ActivationSubscriber(act, url, heartbeat=0.5).start()
        broker = PaperBroker(cash=10_000.0, fee_bps=10.0)
        svc = BookService(
            open_book_store(str(tmp_path / "b.db")), broker, BookConfig(W, symbols=("BTC",))
        )
        svc.start()
        src = KafkaTargets(kafka.brokers, W, topic)
        loop = Loop(svc, src, activation=act, max_age=10.0, reconcile_every=1e9)
        try:
            assert wait_for(lambda: act.get("short") is not None, 30)
            post(p, topic, 1, 100.0)
            assert wait_for(lambda: (loop.once(), svc.led.orders)[1], 30)
            orders = list(svc.led.orders.values())
            want = (wl * 0.8 - ws * 0.5) * 10_000.0 / 100.0
            assert [o.qty for o in orders] == [pytest.approx(want)]  # one net order
            post(p, topic, 2, 101.0)
            assert wait_for(lambda: (loop.once(), svc.led.fills)[1], 30)
            fill = svc.led.fills[0]
            assert fill.price == 101.0 and fill.qty == pytest.approx(want)
            # each strategy's record: its own target, fees by its share of the change
            gl, gs = wl * 0.8 * 100.0, -ws * 0.5 * 100.0
            assert svc.led.strategy_pos[("long", "BTC")] == pytest.approx(gl)
            assert svc.led.strategy_pos[("short", "BTC")] == pytest.approx(gs)
            assert svc.led.strategy_fees["long"] == pytest.approx(fill.fee * gl / (gl - gs))
            assert svc.led.strategy_fees["short"] == pytest.approx(fill.fee * -gs / (gl - gs))
            assert svc.differences() == []
            # the world is force-deleted: nothing more leaves, whatever the targets say
            r = httpx.delete(f"{url}/worlds/{W}", params={"force": "true"})
            assert r.status_code in (200, 204), r.text
            assert wait_for(lambda: act.gone is not None, 30)
            n = len(svc.led.orders)
            post(p, topic, 3, 101.0, long_w=2.0)
            assert wait_for(lambda: (loop.once(), svc.led.target_seq.get("long") == 3)[1], 30)
            loop.once()
            assert len(svc.led.orders) == n and not svc.led.world_known
        finally:
            sub.close()
            src.close()
