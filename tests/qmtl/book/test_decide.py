"""Decisions: two strategies long and short the same symbol make one net order whose fill
is shared back by their target changes; a strategy no longer active, or a world gone, never
trades on its last target."""

from __future__ import annotations

import pytest

from qmtl.book.decide import BookPolicy, decide
from qmtl.book.ledger import Ledger
from qmtl.book.model import Instrument
from qmtl.book.risk import RateLimit


def book() -> Ledger:
    led = Ledger("w")
    led.apply({"kind": "adopt", "cash": 10_000.0, "positions": {}})
    led.apply({"kind": "weights", "weights": {"long": 0.5, "short": 0.5}})
    led.apply(
        {
            "kind": "target",
            "strategy": "long",
            "seq": 1,
            "weights": {"BTC": 0.8},
            "prices": {"BTC": 100.0},
            "ts": 1,
        }
    )
    led.apply(
        {
            "kind": "target",
            "strategy": "short",
            "seq": 1,
            "weights": {"BTC": -0.5},
            "prices": {"BTC": 100.0},
            "ts": 1,
        }
    )
    return led


def fill_all(led: Ledger, events: list[dict], price: float, fee: float = 0.0) -> None:
    for e in events:
        led.apply(e)
        led.apply({"kind": "status", "client_id": e["client_id"], "status": "accepted"})
        led.apply(
            {
                "kind": "fill",
                "client_id": e["client_id"],
                "trade_id": e["client_id"],
                "qty": e["qty"],
                "price": price,
                "fee": fee,
            }
        )


def test_long_and_short_make_one_net_order_and_share_its_fill() -> None:
    led = book()
    events = decide(led, {"BTC": Instrument("BTC", lot=0.001)}, BookPolicy(), RateLimit(0, 1))
    assert [(e["kind"], e["qty"]) for e in events] == [("order", 15.0)]  # 40 - 25
    fill_all(led, events, price=100.5, fee=1.5)
    assert led.positions == {"BTC": 15.0}
    # each strategy holds its own target, crossed inside the book; fees by |change|
    assert led.strategy_pos == pytest.approx({("long", "BTC"): 40.0, ("short", "BTC"): -25.0})
    assert led.strategy_fees["long"] == pytest.approx(1.5 * 40 / 65)
    assert led.strategy_fees["short"] == pytest.approx(1.5 * 25 / 65)
    assert led.cash == pytest.approx(10_000.0 - 15 * 100.5 - 1.5)
    # the fill's cost moved the equity (and so the targets) by 0.09%: a band of 0.1% holds
    # the next order back, none at all sends the 0.0135 the cost took off the target
    drift = decide(led, {}, BookPolicy(), RateLimit(0, 1))
    assert [e["qty"] for e in drift] == pytest.approx([-9.0 * 0.3 / 100.0 * 0.5])
    assert decide(led, {}, BookPolicy(band=0.001), RateLimit(0, 1)) == []


def test_an_open_order_counts_and_a_restart_decides_the_same_id() -> None:
    led = book()
    first = decide(led, {}, BookPolicy(), RateLimit(0, 1))
    again = decide(book(), {}, BookPolicy(), RateLimit(0, 1))
    assert first[0]["client_id"] == again[0]["client_id"]
    led.apply(first[0])
    assert decide(led, {}, BookPolicy(), RateLimit(0, 1)) == []  # on order already


@pytest.mark.parametrize(("inactive", "expect"), [("hold", []), ("flatten", [-40.0])])
def test_a_strategy_no_longer_active_is_held_or_flattened_never_traded(
    inactive: str, expect: list[float]
) -> None:
    led = book()
    fill_all(led, decide(led, {}, BookPolicy(), RateLimit(0, 1)), price=100.0)
    # "long" leaves the world, with a new target it must not trade on
    led.apply({"kind": "weights", "weights": {"short": 0.5}})
    led.apply(
        {
            "kind": "target",
            "strategy": "long",
            "seq": 2,
            "weights": {"BTC": 1.0},
            "prices": {"BTC": 100.0},
            "ts": 2,
        }
    )
    events = decide(led, {}, BookPolicy(inactive=inactive), RateLimit(0, 1))
    assert [e["qty"] for e in events] == pytest.approx(expect)
    assert all(dict(e["shares"]).keys() == {"long"} for e in events)


def test_a_world_that_is_gone_sends_nothing_for_any_strategy() -> None:
    led = book()
    assert decide(led, {}, BookPolicy(), RateLimit(0, 1))  # the control
    led.apply({"kind": "weights", "weights": {"long": 0.5, "short": 0.5}, "known": False})
    assert decide(led, {}, BookPolicy(), RateLimit(0, 1)) == []


def test_what_no_strategy_holds_is_held() -> None:
    led = Ledger("w")
    led.apply({"kind": "adopt", "cash": 1000.0, "positions": {"ETH": 3.0}})
    led.apply({"kind": "mark", "prices": {"ETH": 10.0}, "ts": 0})
    assert led.external == {"ETH": 3.0}
    assert decide(led, {}, BookPolicy(), RateLimit(0, 1)) == []
