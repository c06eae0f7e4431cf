"""The book's loop: targets from a file and from the Kafka targets topic (Tansu), fills at
the targets' prices on the paper broker, the world's activation through the gate's book,
a periodic reconciliation that halts on a difference, and a lost broker."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.brokers.base import BrokerUnavailable
from connectors.brokers.paper import PaperBroker
from dataflows.gate import ActivationBook
from qmtl.book_run.process import Loop, broker_from_spec
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.book_run.targets import FileTargets, KafkaTargets, TargetUpdate, publish_targets


def update(sid: str, seq: int, w: float, price: float = 100.0) -> TargetUpdate:
    return TargetUpdate(
        world="w", strategy_id=sid, seq=seq, ts=seq, weights={"BTC": w}, prices={"BTC": price}
    )


def write(path: Path, *ups: TargetUpdate) -> None:
    with path.open("a") as f:
        for u in ups:
            f.write(u.model_dump_json() + "\n")


def book(tmp: Path) -> BookService:
    broker = broker_from_spec(f"paper:{tmp / 'paper.json'}?cash=10000&fee_bps=10", ("BTC",))
    svc = BookService(open_book_store(str(tmp / "b.db")), broker, BookConfig("w", symbols=("BTC",)))
    svc.start()
    return svc


def test_targets_from_a_file_fill_at_the_next_bar_and_follow_the_world(tmp_path: Path) -> None:
    svc, path = book(tmp_path), tmp_path / "t.jsonl"
    act = ActivationBook("w")
    act.load_snapshot(
        {
            "seq": 1,
            "strategies": [
                {"strategy_id": "long", "active": True, "weight": 0.5},
                {"strategy_id": "short", "active": True, "weight": 0.5},
            ],
        },
        now=time.monotonic(),
    )
    loop = Loop(svc, FileTargets(path, "w"), activation=act, reconcile_every=1e9)
    write(path, update("long", 1, 0.8), update("short", 1, -0.5))
    assert loop.once() == 2
    assert [o.qty for o in svc.led.orders.values()] == [15.0]
    write(path, update("long", 2, 0.8, 101.0), update("short", 2, -0.5, 101.0))
    loop.once()
    assert svc.led.positions == {"BTC": 15.0} and isinstance(svc.broker, PaperBroker)
    assert svc.broker.positions() == {"BTC": 15.0}
    # the world turns "long" off: its part is held, "short"'s own target still trades
    act.apply_event(
        {"strategy_id": "long", "active": False, "weight": 0.0, "seq": 2}, now=time.monotonic()
    )
    write(path, update("long", 3, 1.0, 101.0), update("short", 3, -0.6, 101.0))
    loop.once()
    new = list(svc.led.orders.values())[-1]
    assert dict(new.shares).keys() == {"short"} and new.qty < 0
    assert svc.led.weights == {"short": 0.5}


class Flaky(PaperBroker):
    """A paper account whose connection can drop."""

    down = False

    def positions(self) -> dict[str, float]:
        if self.down:
            raise BrokerUnavailable("connection reset")
        return super().positions()


def test_reconciling_halts_on_a_difference_and_after_a_lost_connection(tmp_path: Path) -> None:
    flaky = Flaky(cash=1000.0)
    svc = BookService(open_book_store(str(tmp_path / "b.db")), flaky, BookConfig("w"))
    svc.start()
    loop = Loop(svc, FileTargets(tmp_path / "none.jsonl", "w"), weights={}, reconcile_every=1e9)
    loop.once()
    assert svc.led.state == "ACTIVE"
    flaky.down = True
    loop.reconcile_every = 0.0
    loop.once()  # the broker is unreachable: nothing changes, it will reconcile when back
    assert svc.led.state == "ACTIVE" and loop._lost
    flaky.cash = 900.0  # money moved while the book could not see it
    flaky.down = False
    loop.reconcile_every = 1e9
    loop.once()
    assert svc.led.state == "HALTED"
    assert "balance USDT: ledger 1000.00, broker 900.00" in svc.led.state_reason


def test_targets_from_the_kafka_topic_keyed_by_world(kafka, tmp_path: Path) -> None:
    from confluent_kafka import Producer

    topic = f"targets-{time.time_ns()}"
    p = Producer({"bootstrap.servers": kafka.brokers})
    publish_targets(p, update("long", 1, 0.5), topic)
    publish_targets(
        p,
        TargetUpdate(
            world="other", strategy_id="x", seq=1, ts=1, weights={"BTC": 1.0}, prices={"BTC": 1.0}
        ),
        topic,
    )
    publish_targets(p, update("long", 1, 0.5), topic)  # a repeat
    p.flush(10)
    src = KafkaTargets(kafka.brokers, "w", topic)
    try:
        got: list[TargetUpdate] = []
        end = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < end:
            got += src.poll(0.5)
        assert [(u.world, u.strategy_id, u.seq) for u in got] == [("w", "long", 1)] * 2
        svc = book(tmp_path)
        loop = Loop(svc, src, weights={"long": 1.0})
        loop.targets = type(
            "Once", (), {"poll": lambda self: got, "close": lambda self: None, "commit": src.commit}
        )()
        loop.once()
        assert [o.qty for o in svc.led.orders.values()] == [pytest.approx(50.0)]  # once
    finally:
        src.close()
