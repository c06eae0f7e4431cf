"""Reconciliation compares positions, open orders and balances with tolerances and says what
differs; the ledger's own snapshot is what it compares."""

from __future__ import annotations

from qmtl.book.ledger import Ledger, request_event
from qmtl.book.model import OrderRequest
from qmtl.book.reconcile import Snapshot, compare


def test_agreeing_within_tolerance_is_no_difference() -> None:
    a = Snapshot({"BTC": 1.0}, {"c": ("BTC", 0.5)}, {"USDT": 100.0})
    b = Snapshot({"BTC": 1.0 + 1e-12, "ETH": 0.0}, {"c": ("BTC", 0.5)}, {"USDT": 100.004})
    assert compare(a, b, cash_tol=0.01) == []


def test_each_kind_of_difference_is_reported() -> None:
    a = Snapshot({"BTC": 1.0}, {"c": ("BTC", 0.5)}, {"USDT": 100.0})
    b = Snapshot({"ETH": 2.0}, {"c": ("BTC", 0.25), "x": ("ETH", -1.0)}, {"USDT": 90.0})
    out = [str(d) for d in compare(a, b)]
    assert out == [
        "position BTC: ledger 1, broker 0",  # missing at the broker is not flat
        "position ETH: ledger 0, broker 2",
        "open order c: ledger BTC 0.5, broker BTC 0.25",
        "open order x: ledger none, broker ETH -1 (unknown to the book)",
        "balance USDT: ledger 100.00, broker 90.00",
    ]


def test_the_ledger_snapshot_after_an_order_and_a_partial_fill() -> None:
    led = Ledger("w")
    led.apply({"kind": "adopt", "cash": 1000.0, "positions": {}})
    led.apply(request_event(OrderRequest("c", "X", 4.0, 10.0)))
    assert led.snapshot().open_orders == {}  # not yet sent: the broker cannot have it
    led.apply({"kind": "status", "client_id": "c", "status": "accepted"})
    led.apply(
        {"kind": "fill", "client_id": "c", "trade_id": "1", "qty": 1.0, "price": 10.0, "fee": 0.5}
    )
    snap = led.snapshot()
    assert snap.positions == {"X": 1.0}
    assert snap.open_orders == {"c": ("X", 3.0)}
    assert snap.balances == {"USDT": 989.5}
    broker = Snapshot({"X": 1.0}, {"c": ("X", 3.0)}, {"USDT": 989.5, "BNB": 1.0})
    assert compare(snap, broker) == []
