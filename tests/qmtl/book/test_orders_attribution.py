"""The order state machine (duplicate and over-fills), client ids across restarts, and the
attribution of fills and fees back to strategies."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.book.attribution import allocate
from qmtl.book.ledger import Ledger, request_event
from qmtl.book.model import STATUSES, FillEvent, OrderRequest
from qmtl.book.orders import MOVES, Order, apply_fill, apply_status, client_order_id


def test_every_status_has_its_moves_and_terminal_ones_none() -> None:
    for s in MOVES:
        assert s in STATUSES
        assert MOVES[s] <= set(STATUSES)
    for terminal in ("filled", "cancelled", "rejected", "expired", "denied"):
        o = Order("c", "X", 1.0, status=terminal)
        assert all(apply_status(o, s) in ("illegal", "duplicate") for s in STATUSES)
        assert o.status == terminal


def test_a_partial_fill_then_the_rest_then_a_duplicate_and_an_overfill() -> None:
    o = Order("c", "X", -3.0, status="accepted")
    assert apply_fill(o, FillEvent("c", "t1", -1.0, 10.0, 0.01)) == "applied"
    assert (o.status, o.filled) == ("partially_filled", -1.0)
    assert apply_fill(o, FillEvent("c", "t1", -1.0, 10.0, 0.01)) == "duplicate"
    assert apply_fill(o, FillEvent("c", "t2", -2.5, 10.0)) == "overfill"
    assert apply_fill(o, FillEvent("c", "t3", 1.0, 10.0)) == "illegal"  # wrong side
    assert apply_fill(o, FillEvent("c", "t4", -2.0, 13.0, 0.02)) == "applied"
    assert (o.status, o.filled, o.avg_price, round(o.fees, 9)) == ("filled", -3.0, 12.0, 0.03)
    assert apply_status(o, "cancelled") == "illegal"


def test_filled_is_never_a_status_alone_and_a_late_fill_after_cancel_counts() -> None:
    o = Order("c", "X", 2.0, status="submitted")
    assert apply_status(o, "filled") == "illegal"
    assert apply_status(o, "cancelled") == "applied"
    assert apply_fill(o, FillEvent("c", "t", 1.0, 5.0)) == "applied"
    assert (o.status, o.filled, o.remaining) == ("cancelled", 1.0, 0.0)


def test_the_ledger_refuses_an_overfill_and_notes_it() -> None:
    led = Ledger("w", cash=100.0)
    led.apply(request_event(OrderRequest("c", "X", 1.0, 10.0)))
    led.apply({"kind": "fill", "client_id": "c", "trade_id": "a", "qty": 1.0, "price": 10.0})
    again = {"kind": "fill", "client_id": "c", "trade_id": "a", "qty": 1.0, "price": 10.0}
    assert led.apply(again) == "duplicate"
    assert led.apply({**again, "trade_id": "b"}) == "overfill"
    assert led.positions == {"X": 1.0} and led.cash == 90.0
    assert led.anomalies and "overfill of c" in led.anomalies[0]
    assert led.apply(request_event(OrderRequest("c", "X", 5.0, 10.0))) == "duplicate"


def test_client_ids_are_deterministic_and_distinct() -> None:
    ids = {
        client_order_id(w, "main", s, n)
        for w in ("w1", "w2")
        for s in ("A", "B")
        for n in range(50)
    }
    assert len(ids) == 200
    assert client_order_id("w1", "main", "A", 3) == client_order_id("w1", "main", "A", 3)
    assert all(len(i) == 32 and i.isalnum() for i in ids)


shares = st.lists(
    st.tuples(st.sampled_from("abcdef"), st.floats(-1e4, 1e4)),
    min_size=1,
    max_size=6,
    unique_by=lambda t: t[0],
)


@settings(max_examples=300, deadline=None)
@given(shares, st.floats(-1e4, 1e4), st.floats(0.0, 100.0))
def test_attributed_fills_and_fees_add_up_to_the_fill(
    sh: list[tuple[str, float]], qty: float, fee: float
) -> None:
    live = [(s, g) for s, g in sh if g]
    if not live or abs(math.fsum(g for _, g in live)) < 1e-6:
        return
    parts = allocate(qty, fee, sh)
    assert math.fsum(q for _, q, _ in parts) == pytest.approx(qty, abs=1e-9 * max(1, abs(qty)))
    assert math.fsum(f for *_, f in parts) == pytest.approx(fee, abs=1e-9 * max(1, fee))
    total = math.fsum(g for _, g in live)
    for s, q, f in parts[:-1]:
        g = dict(live)[s]
        assert q == pytest.approx(qty * g / total)
        assert f >= 0


@settings(max_examples=100, deadline=None)
@given(
    shares,
    st.lists(
        st.tuples(st.floats(0.01, 1.0), st.floats(1.0, 100.0), st.floats(0.0, 1.0)),
        min_size=1,
        max_size=5,
    ),
)
def test_the_ledgers_strategy_positions_fees_and_cash_add_up_to_the_books(
    sh: list[tuple[str, float]], fills: list[tuple[float, float, float]]
) -> None:
    total = math.fsum(g for _, g in sh if g)
    if abs(total) < 1e-3:
        return
    led = Ledger("w", cash=1e6)
    led.apply(request_event(OrderRequest("c", "X", total, 10.0, shares=tuple(sh))))
    done, paid = 0.0, []
    for k, (frac, price, fee) in enumerate(fills):
        q = (total - done) * frac
        if q == 0.0:  # the order is filled: a fill of nothing is illegal
            break
        done += q
        paid.append(fee)
        out = led.apply(
            {
                "kind": "fill",
                "client_id": "c",
                "trade_id": str(k),
                "qty": q,
                "price": price,
                "fee": fee,
            }
        )
        assert out == "applied"
    pos = math.fsum(q for (_, _s), q in led.strategy_pos.items())
    assert pos == pytest.approx(led.positions["X"], rel=1e-9, abs=1e-9)
    fees = math.fsum(led.strategy_fees.values())
    assert fees == pytest.approx(math.fsum(paid), abs=1e-9)
    assert math.fsum(led.strategy_cash.values()) == pytest.approx(
        led.cash - 1e6, rel=1e-9, abs=1e-6
    )
