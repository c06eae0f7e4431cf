"""The paper broker on the order store, on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import pytest

from connectors.live.paper_broker import PaperBroker
from qmtl.core.contracts import OrderIntent


def order(symbol="A", ts=1, qty=10.0, weight=0.5, strategy="s"):
    return OrderIntent(world="w", strategy_id=strategy, symbol=symbol, ts=ts,
                       target_weight=weight, target_qty=qty, reason="rebalance")


def test_paper_fills_at_next_open_with_slippage_and_fee_by_hand(store):
    b = PaperBroker(store, "w", "s", slippage_bps=5.0, fee_bps=2.0)
    b.submit([order("A", ts=1, qty=100.0)])
    assert b.on_bar("A", 1, open_=50.0) == []  # the deciding bar itself does not fill it
    assert b.on_bar("B", 2, open_=50.0) == []  # another symbol's bar neither
    [fill] = b.on_bar("A", 2, open_=50.0)
    first = fill
    assert fill.qty == 100.0 and fill.price == pytest.approx(50.025)  # buys pay up 5 bp
    assert fill.fee == pytest.approx(100 * 50.025 * 2e-4)
    assert fill.order_id == "w/s/A/1" and fill.ts == 2
    b.submit([order("A", ts=3, qty=40.0)])
    [fill] = b.on_bar("A", 4, open_=60.0)
    assert fill.qty == -60.0 and fill.price == pytest.approx(60 * (1 - 5e-4))  # sells get less
    assert b.position("A") == 40.0 and store.positions("w", "s") == {}
    assert b.flush() == ([], [first, fill])  # stored in one transaction per flush
    assert store.positions("w", "s") == {"A": 40.0}
    assert b.flush() == ([], [])


def test_a_restarted_broker_knows_what_it_holds_and_fills_nothing_twice(store):
    b = PaperBroker(store, "w", "s")
    b.submit([order("A", ts=1, qty=10.0), order("B", ts=1, qty=5.0)])
    b.on_bar("A", 2, open_=10.0)
    b.flush()
    again = PaperBroker(store, "w", "s")  # a new process, the same store
    assert again.position("A") == 10.0 and again.position("B") == 0.0
    assert again.submit([order("A", ts=1, qty=10.0)]) == []  # replayed decision: nothing new
    assert again.on_bar("A", 2, open_=10.0) == []  # replayed bar: filled already
    [fill] = again.on_bar("B", 2, open_=20.0)  # the open order survived the restart
    assert (fill.symbol, fill.qty) == ("B", 5.0)
    assert again.flush() == ([], [fill])
    assert len(store.fills("w")) == 2
    # a replayed stretch (the old broker's view) finds every key taken: nothing new
    b.accept([order("B", ts=1, qty=5.0)])
    b.on_bar("B", 2, open_=20.0)
    assert b.flush() == ([order("B", ts=1, qty=5.0)][:0], [])
    assert len(store.fills("w")) == 2 and store.positions("w", "s") == {"A": 10.0, "B": 5.0}
