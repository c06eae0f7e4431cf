"""The paper broker behind the broker interface fills by the backtest's rule and costs, and
its account outlives the process that used it."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.brokers.paper import PaperBroker
from dataflows.execution import Execution, fee, fill_price
from qmtl.book.model import FillEvent, Instrument, OrderRequest, OrderUpdate


def test_next_open_fills_at_the_next_bars_open_with_the_backtests_costs() -> None:
    b = PaperBroker(cash=10_000.0, fee_bps=5.0, slippage_bps=10.0)
    assert b.submit(OrderRequest("c", "X", -3.0, 100.0)).ok
    assert b.on_bar("X", ts=5, open_=101.0, close=102.0, decided=5) == 0  # same bar: not yet
    assert b.on_bar("X", ts=6, open_=103.0, close=104.0) == 1
    price = fill_price(103.0, -3.0, 10.0 / 1e4)
    assert price == pytest.approx(103.0 * 0.999)
    fills = [e for e in b.poll([]) if isinstance(e, FillEvent)]
    assert [(f.qty, f.price, f.fee, f.ts) for f in fills] == [
        (-3.0, price, fee(-3.0, price, 5.0), 6)
    ]
    assert b.positions() == {"X": -3.0}
    assert b.balances()["USDT"] == pytest.approx(10_000.0 + 3 * price - fee(-3.0, price, 5.0))


def test_close_rule_fills_at_the_deciding_bars_close() -> None:
    b = PaperBroker(cash=1000.0, execution=Execution(rule="close"))
    b.submit(OrderRequest("c", "X", 1.0, 10.0))
    assert b.on_bar("X", ts=5, open_=9.0, close=10.0, decided=5) == 1
    assert [e.price for e in b.poll([]) if isinstance(e, FillEvent)] == [10.0]


def test_limit_orders_fill_when_reached_and_ioc_expires() -> None:
    b = PaperBroker(cash=1000.0)
    b.submit(OrderRequest("g", "X", 1.0, 10.0, type="limit", limit_price=9.5))
    b.submit(OrderRequest("i", "X", 1.0, 10.0, type="limit", tif="IOC", limit_price=9.0))
    assert b.on_bar("X", ts=2, open_=10.0, close=9.8, high=10.1, low=9.4) == 1
    news = b.poll([])
    assert [(e.client_id, e.status) for e in news if isinstance(e, OrderUpdate)] == [
        ("g", "accepted"),
        ("i", "accepted"),
        ("i", "expired"),
    ]
    assert [(e.client_id, e.price) for e in news if isinstance(e, FillEvent)] == [("g", 9.5)]


def test_a_duplicate_client_id_and_a_small_order_are_rejected() -> None:
    b = PaperBroker(cash=1000.0, instruments={"X": Instrument("X", min_notional=5.0)})
    assert b.submit(OrderRequest("c", "X", 1.0, 10.0)).ok
    assert "duplicate client order id" in b.submit(OrderRequest("c", "X", 1.0, 10.0)).reason
    assert "under the minimum" in b.submit(OrderRequest("d", "X", 0.1, 10.0)).reason


def test_the_account_outlives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    b = PaperBroker(cash=1000.0, state=path)
    b.submit(OrderRequest("c", "X", 2.0, 10.0))
    again = PaperBroker(cash=0.0, state=path)  # a new process: the file's account
    assert [o.client_id for o in again.open_orders()] == ["c"]
    again.on_bar("X", ts=1, open_=10.0, close=10.0, decided=0)
    third = PaperBroker(state=path)
    assert third.positions() == {"X": 2.0} and third.balances() == {"USDT": 980.0}
    assert third.order("c", "X").status == "filled"
