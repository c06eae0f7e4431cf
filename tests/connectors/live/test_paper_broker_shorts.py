"""Short targets in the paper broker: selling short from flat, flipping to long, covering."""

from __future__ import annotations

import pytest

from connectors.live.paper_broker import PaperBroker
from qmtl.core.contracts import OrderIntent


def order(ts: int, qty: float, weight: float) -> OrderIntent:
    return OrderIntent(world="w", strategy_id="s", symbol="A", ts=ts, target_weight=weight,
                       target_qty=qty, reason="rebalance")


def test_short_flip_and_cover_by_hand(store):
    b = PaperBroker(store, "w", "s", slippage_bps=10.0, fee_bps=1.0)
    b.submit([order(1, -200.0, -0.5)])
    [short] = b.on_bar("A", 2, open_=50.0)
    assert short.qty == -200.0 and short.price == pytest.approx(50 * (1 - 1e-3))  # sells get less
    assert short.fee == pytest.approx(200 * 50 * (1 - 1e-3) * 1e-4)  # fee on |qty|
    assert b.position("A") == -200.0
    b.submit([order(3, 100.0, 0.25)])
    [flip] = b.on_bar("A", 4, open_=40.0)
    assert flip.qty == 300.0 and flip.price == pytest.approx(40 * (1 + 1e-3))  # buys pay up
    b.submit([order(5, 0.0, 0.0)])
    [out] = b.on_bar("A", 6, open_=41.0)
    assert out.qty == -100.0 and b.position("A") == 0.0
    b.flush()
    assert store.positions("w", "s") in ({}, {"A": 0.0})


def test_a_restarted_broker_keeps_a_short_position(store):
    b = PaperBroker(store, "w", "s")
    b.submit([order(1, -30.0, -0.3)])
    b.on_bar("A", 2, open_=10.0)
    b.flush()
    again = PaperBroker(store, "w", "s")
    assert again.position("A") == -30.0
