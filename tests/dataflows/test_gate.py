"""The gate's verdicts and sizing, by hand."""

from __future__ import annotations

import copy
import pickle

import pytest

from dataflows.gate import ActivationBook, OrderGate, Verdict, verdict


def book_with(active=True, weight=0.4, seq=3, at=0.0) -> ActivationBook:
    b = ActivationBook("w")
    b.apply_event({"strategy_id": "s", "active": active, "weight": weight, "seq": seq}, now=at)
    return b


def test_fails_closed_without_a_known_fresh_activation():
    b = ActivationBook("w")
    assert verdict(b, "s", 0.0, 30.0).kind == "hold"  # never connected
    b.confirm(0.0)
    v = verdict(b, "s", 0.0, 30.0)
    assert v.kind == "hold" and "no activation known" in v.reason
    b = book_with(at=100.0)
    assert verdict(b, "s", 129.0, 30.0).kind == "trade"
    stale = verdict(b, "s", 131.0, 30.0)
    assert stale.kind == "hold" and "31 s old" in stale.reason
    b.confirm(131.0)  # a heartbeat makes it fresh again
    assert verdict(b, "s", 131.5, 30.0) == Verdict("trade", 0.4, "active")
    b.lose("connection reset")
    assert verdict(b, "s", 131.5, 30.0).kind == "hold"


def test_events_apply_in_seq_order_and_snapshots_replace_the_table():
    b = book_with(seq=5)
    b.apply_event({"strategy_id": "s", "active": False, "weight": 0.0, "seq": 4}, now=1.0)
    assert b.get("s").active  # an older event changes nothing
    b.load_snapshot({"seq": 9, "strategies": [{"strategy_id": "t", "active": True,
                                                "weight": 1.0}]}, now=2.0)
    assert b.get("s") is None and b.get("t").weight == 1.0 and b.seq == 9


def test_sizing_by_hand_and_orders_only_on_change():
    g = OrderGate("w", "s", capital=100_000.0)
    trade = Verdict("trade", weight=0.25)
    [o] = g.on_bar("AAPL", 10, weight=0.8, close=50.0, v=trade)
    assert (o.target_weight, o.target_qty) == (0.2, 400.0)  # 0.8 x 0.25 x 100k / 50
    assert o.world == "w" and o.strategy_id == "s" and o.ts == 10
    assert g.on_bar("AAPL", 11, 0.8, 55.0, trade) == []  # same target weight: no order
    [o] = g.on_bar("AAPL", 12, 0.8, 40.0, Verdict("trade", weight=0.5))  # world weight moved
    assert o.target_qty == pytest.approx(1000.0)
    assert g.on_bar("AAPL", 13, 0.0, 40.0, Verdict("hold", reason="lost")) == []
    assert g.held == "lost"
    [o] = g.on_bar("AAPL", 14, 0.8, 40.0, Verdict("flatten"))
    assert o.target_qty == 0.0 and o.reason.startswith("deactivated")
    assert g.on_bar("AAPL", 15, 0.8, 40.0, Verdict("flatten")) == []  # flat already
    assert g.on_bar("MSFT", 15, 0.8, 40.0, Verdict("flatten")) == []  # never held


def test_gate_state_survives_a_snapshot():
    g = OrderGate("w", "s", capital=1.0)
    g.on_bar("A", 1, 1.0, 1.0, Verdict("trade", weight=1.0))
    back = pickle.loads(pickle.dumps(copy.deepcopy(g)))
    assert back.on_bar("A", 2, 1.0, 1.0, Verdict("trade", weight=1.0)) == []


def test_short_targets_are_scaled_by_the_world_weight_and_flattened():
    g = OrderGate("w", "s", capital=100_000.0)
    trade = Verdict("trade", weight=0.5)  # the world's weight (>= 0) scales the whole book
    [o] = g.on_bar("AAPL", 1, weight=-0.6, close=50.0, v=trade)
    assert (o.target_weight, o.target_qty) == (-0.3, -600.0)
    [o] = g.on_bar("AAPL", 2, weight=0.4, close=50.0, v=trade)  # short to long: one order
    assert (o.target_weight, o.target_qty) == (0.2, 400.0)
    [o] = g.on_bar("AAPL", 3, weight=-0.4, close=40.0, v=trade)
    assert o.target_qty == pytest.approx(-500.0)
    [o] = g.on_bar("AAPL", 4, weight=-0.4, close=40.0, v=Verdict("flatten"))
    assert o.target_qty == 0.0


def test_the_world_weight_cannot_be_negative():
    from pydantic import ValidationError

    from qmtl.core.contracts import ActivationEvent

    with pytest.raises(ValidationError):
        ActivationEvent(world="w", seq=1, ts=0, strategy_id="s", active=True, weight=-0.5,
                        reason="x", policy_version=1)
