"""The book service on a real store and the paper broker: one net order for two opposite
strategies, shared back by their changes; restarts that send nothing twice; a broker that
differs refuses to trade until adopted; operator halts from another process; a world gone."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from connectors.brokers.paper import PaperBroker
from qmtl.book.decide import BookPolicy, decide
from qmtl.book.model import OrderRequest
from qmtl.book_run.service import BookConfig, BookService, RefuseToTrade
from qmtl.book_run.store import open_book_store

CFG = BookConfig("w", symbols=("BTC",))


def service(tmp: Path, broker: PaperBroker | None = None, cfg: BookConfig = CFG) -> BookService:
    broker = broker or PaperBroker(cash=10_000.0, fee_bps=10.0, state=tmp / "paper.json")
    return BookService(open_book_store(str(tmp / "book.db")), broker, cfg)


def bar(svc: BookService, ts: int, price: float) -> None:
    """A bar of the paper market: fills, then both strategies' targets, then a decision."""
    svc.broker.on_bar("BTC", ts, price, price)
    svc.sync()
    svc.on_target("long", ts, {"BTC": 0.8}, {"BTC": price}, ts)
    svc.on_target("short", ts, {"BTC": -0.5}, {"BTC": price}, ts)
    svc.step(now=float(ts), ts=ts)


def test_two_opposite_strategies_trade_one_net_order_and_share_the_fill(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.start()
    svc.set_weights({"long": 0.5, "short": 0.5})
    bar(svc, 1, 100.0)
    orders = list(svc.led.orders.values())
    assert [(o.qty, o.status) for o in orders] == [(15.0, "submitted")]  # 40 - 25, one order
    bar(svc, 2, 102.0)  # filled at this bar's open
    price, fee = 102.0, 15 * 102.0 * 10 / 1e4
    o = orders[0]
    assert (o.status, o.filled, o.avg_price) == ("filled", 15.0, price)
    led = svc.led
    # the two records, by their shares of the change (+40, -25): positions, and fees by |share|
    assert led.strategy_pos[("long", "BTC")] == pytest.approx(40.0)
    assert led.strategy_pos[("short", "BTC")] == pytest.approx(-25.0)
    assert led.strategy_fees["long"] == pytest.approx(fee * 40 / 65)
    assert led.strategy_fees["short"] == pytest.approx(fee * 25 / 65)
    assert math.fsum(led.strategy_cash.values()) == pytest.approx(led.cash - 10_000.0)
    # the book marked to market, computed here from the fill alone
    assert led.equity() == pytest.approx(10_000.0 - 15 * price - fee + 15 * 102.0)
    assert svc.differences() == []


def test_a_restart_settles_from_the_store_and_sends_nothing_twice(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.start()
    svc.set_weights({"long": 0.5, "short": 0.5})
    bar(svc, 1, 100.0)
    sent = list(svc.led.orders)
    # a new process on the same store and paper account
    again = service(tmp_path)
    assert list(again.led.orders) == sent and again.led.target_seq == {"long": 1, "short": 1}
    assert again.start() == []
    again.on_target("long", 1, {"BTC": 0.8}, {"BTC": 100.0}, 1)  # a replayed target: dropped
    assert again.step(now=1.0, ts=1) == []  # the order is open: nothing more
    assert len(again.broker.orders) == 1


def test_an_order_stored_but_never_sent_is_sent_once_under_its_id(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.start()
    svc.set_weights({"long": 1.0})
    svc.on_target("long", 1, {"BTC": 0.5}, {"BTC": 100.0}, 1)
    # a crash between storing the order and sending it: the store has it ``new``
    events = decide(svc.led, {}, CFG.policy, svc.rate, 0.0, 1)
    svc.record(events)
    cid = events[0]["client_id"]
    assert svc.broker.orders == {}
    again = service(tmp_path)
    again.start()
    assert list(again.broker.orders) == [cid]
    assert again.led.orders[cid].status == "accepted"
    again.start()  # and again: the venue has it now, it is followed, not sent
    assert list(again.broker.orders) == [cid]


def test_a_broker_position_the_ledger_does_not_know_refuses_until_adopted(tmp_path: Path) -> None:
    paper = PaperBroker(cash=1000.0, state=tmp_path / "paper.json")
    paper.submit(OrderRequest("manual", "BTC", 2.0, 10.0))
    paper.on_bar("BTC", 1, 10.0, 10.0, decided=0)
    paper.poll([])
    svc = service(tmp_path, paper)
    with pytest.raises(RefuseToTrade, match="never seen") as err:
        svc.start()
    assert "position BTC: ledger 0, broker 2" in str(err.value)
    svc.set_weights({"long": 1.0})
    svc.on_target("long", 1, {"BTC": 0.5}, {"BTC": 10.0}, 1)
    assert svc.step(now=0.0, ts=1) == []  # not trading
    diffs = svc.adopt("alice", "moved in by hand")
    assert [str(d) for d in diffs] == [
        "position BTC: ledger 0, broker 2",
        "balance USDT: ledger 0.00, broker 980.00",
    ]
    adopt = [e for e in svc.store.events("w") if e["kind"] == "adopt"][-1]
    assert (adopt["who"], adopt["why"]) == ("alice", "moved in by hand")
    assert svc.start() == []
    assert svc.led.external == {"BTC": 2.0}
    sent = svc.step(now=0.0, ts=1)  # 0.5 of 1000 at 10 = 50, beside the 2 it holds
    assert [e["qty"] for e in sent] == [50.0]


def test_a_halt_written_by_another_process_stops_the_next_order(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.start()
    svc.set_weights({"long": 1.0})
    other = open_book_store(str(tmp_path / "book.db"))
    other.append("w", [{"kind": "state", "state": "HALTED", "reason": "x", "who": "bob"}])
    svc.on_target("long", 1, {"BTC": 0.5}, {"BTC": 100.0}, 1)
    assert svc.step(now=0.0, ts=1) == []
    denied = [o for o in svc.led.orders.values() if o.status == "denied"]
    assert [o.reason for o in denied] == ["HALTED: no order may go"]
    assert svc.broker.orders == {}
    other.append("w", [{"kind": "state", "state": "ACTIVE", "reason": "ok", "who": "bob"}])
    assert [e["qty"] for e in svc.step(now=1.0, ts=1)] == [50.0]


@pytest.mark.parametrize("inactive", ["hold", "flatten"])
def test_a_world_gone_trades_nothing_on_the_last_activation(tmp_path: Path, inactive: str) -> None:
    cfg = BookConfig("w", symbols=("BTC",), policy=BookPolicy(inactive=inactive))  # type: ignore[arg-type]
    svc = service(tmp_path, cfg=cfg)
    svc.start()
    svc.set_weights({"long": 1.0})
    svc.on_target("long", 1, {"BTC": 0.5}, {"BTC": 100.0}, 1)
    svc.step(now=0.0, ts=1)
    svc.broker.on_bar("BTC", 2, 100.0, 100.0)
    svc.sync()
    assert svc.led.positions == {"BTC": 50.0}
    svc.set_weights({"long": 1.0}, known=False)  # deleted: the last activation is stale
    svc.on_target("long", 2, {"BTC": 1.0}, {"BTC": 100.0}, 2)  # would buy 50 more
    sent = svc.step(now=1.0, ts=2)
    assert [e["qty"] for e in sent] == ([] if inactive == "hold" else [-50.0])
