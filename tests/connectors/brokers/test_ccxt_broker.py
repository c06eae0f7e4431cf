"""The ccxt adapter through ccxt's own Binance class against a local server that answers as
Binance's spot REST API documents: orders placed, read back by client id, cancelled; balances
and positions; a rejected order, a partial fill, and a dropped connection (unknown outcome,
resolved by asking by client id, never by sending again)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.binance_server import Exchange, serve, urls
from connectors.brokers.base import BrokerError, BrokerUnavailable
from connectors.brokers.ccxt_broker import CcxtBroker
from qmtl.book.model import FillEvent, OrderRequest, OrderUpdate


@pytest.fixture
def venue() -> Iterator[tuple[Exchange, CcxtBroker]]:
    ex = Exchange({"USDT": 10_000.0, "BNB": 1.0})
    srv, base = serve(ex)
    broker = CcxtBroker(
        "binance",
        ["BTC/USDT"],
        "key",
        "secret",
        sandbox=True,
        config={"urls": urls(base), "timeout": 2000},
    )
    yield ex, broker
    ex.release.set()
    srv.shutdown()


def test_instruments_come_from_the_exchanges_filters(venue) -> None:
    _, b = venue
    inst = b.instruments(["BTC/USDT"])["BTC/USDT"]
    assert (inst.lot, inst.tick, inst.min_qty, inst.min_notional) == (1e-5, 0.01, 1e-5, 5.0)
    with pytest.raises(BrokerError, match="no market 'ETH/USDT'"):
        b.instruments(["ETH/USDT"])


def test_a_market_order_fills_and_the_account_shows_it(venue) -> None:
    ex, b = venue
    assert b.submit(OrderRequest("qm1", "BTC/USDT", 2.0, 100.0)).ok
    assert ex.orders["qm1"]["side"] == "BUY" and ex.orders["qm1"]["origQty"] == 2.0
    events = b.poll([("qm1", "BTC/USDT")])
    fills = [e for e in events if isinstance(e, FillEvent)]
    assert [(f.client_id, f.qty, f.price, round(f.fee, 6)) for f in fills] == [
        ("qm1", 2.0, 100.0, 0.2)
    ]
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == ["filled"]
    assert b.poll([("qm1", "BTC/USDT")]) == fills  # fills again (the book drops repeats)
    assert b.positions() == {"BTC/USDT": 2.0}
    bal = b.balances()
    assert bal["USDT"] == pytest.approx(10_000.0 - 200.0 - 0.2) and bal["BNB"] == 1.0
    o = b.order("qm1", "BTC/USDT")
    assert (o.qty, o.filled, o.status) == (2.0, 2.0, "filled")


def test_a_limit_order_rests_is_listed_and_cancelled(venue) -> None:
    ex, b = venue
    req = OrderRequest("qm2", "BTC/USDT", -0.5, 100.0, type="limit", limit_price=101.0)
    assert b.submit(req).ok
    assert ex.orders["qm2"]["price"] == 101.0 and ex.orders["qm2"]["timeInForce"] == "GTC"
    assert [(o.client_id, o.qty, o.status) for o in b.open_orders()] == [("qm2", -0.5, "accepted")]
    assert b.cancel("qm2", "BTC/USDT") is True
    assert b.open_orders() == []
    assert b.cancel("qm2", "BTC/USDT") is False  # no such open order
    assert b.order("nope", "BTC/USDT") is None


def test_a_rejected_order_is_a_definitive_answer_with_the_venues_reason(venue) -> None:
    ex, b = venue
    ex.reject = True
    out = b.submit(OrderRequest("qm3", "BTC/USDT", 1.0, 100.0))
    assert out.status == "rejected" and "insufficient balance" in out.reason
    assert b.order("qm3", "BTC/USDT") is None


def test_a_partial_fill_leaves_the_rest_open(venue) -> None:
    ex, b = venue
    ex.partial = True
    assert b.submit(OrderRequest("qm4", "BTC/USDT", 1.0, 100.0)).ok
    events = b.poll([("qm4", "BTC/USDT")])
    assert [(type(e).__name__, getattr(e, "qty", None) or e.status) for e in events] == [
        ("FillEvent", pytest.approx(0.4)),
        ("OrderUpdate", "partially_filled"),
    ]
    assert [(o.client_id, o.remaining) for o in b.open_orders()] == [("qm4", pytest.approx(0.6))]
    ex.fill("qm4")
    events = b.poll([("qm4", "BTC/USDT")])
    assert [e.status for e in events if isinstance(e, OrderUpdate)] == ["filled"]
    assert sum(e.qty for e in events if isinstance(e, FillEvent)) == pytest.approx(1.0)


def test_a_dropped_connection_is_an_unknown_outcome_resolved_by_client_id(venue) -> None:
    ex, b = venue
    ex.drop = True
    with pytest.raises(BrokerUnavailable):
        b.submit(OrderRequest("qm5", "BTC/USDT", 1.0, 100.0))
    # the venue took it: asked by client id, it is there (so it is not sent again)
    o = b.order("qm5", "BTC/USDT")
    assert o is not None and o.status == "filled"
    assert ex.posts == ["qm5"]


def test_sandbox_never_falls_back_to_production() -> None:
    with pytest.raises(BrokerError, match="no sandbox"):
        CcxtBroker("bitstamp", ["BTC/USD"], sandbox=True)
    with pytest.raises(BrokerError, match="no exchange 'nope'"):
        CcxtBroker("nope", [])
