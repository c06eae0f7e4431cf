"""The risk engine: each limit, HALTED and REDUCING deny an order that passes without them
(every test checks the control first, so removing the check fails it)."""

from __future__ import annotations

import math

import pytest

from qmtl.book.decide import BookPolicy, decide
from qmtl.book.ledger import Ledger
from qmtl.book.model import OrderRequest
from qmtl.book.risk import AccountView, RateLimit, RiskLimits, auto_state, check

VIEW = AccountView(
    positions={"X": 10.0, "Y": -5.0}, open_qty={"X": 2.0}, prices={"X": 100.0, "Y": 50.0}
)


def order(
    qty: float, price: float = 100.0, sym: str = "X", limit: float | None = None
) -> OrderRequest:
    return OrderRequest(
        "c", sym, qty, price, type="limit" if limit else "market", limit_price=limit
    )


@pytest.mark.parametrize(
    ("limits", "req", "why"),
    [
        (RiskLimits(max_order_notional=500.0), order(6.0), "order notional 600.00 over"),
        (RiskLimits(max_position_notional=1500.0), order(4.0), "position of X would be 1600.00"),
        # gross before: 1200 + 250 = 1450; +3 X -> 1750
        (RiskLimits(max_gross=1700.0), order(3.0), "gross exposure would be 1750.00"),
        # net before: 1200 - 250 = 950; +3 X -> 1250
        (RiskLimits(max_net=1200.0), order(3.0), "net exposure would be 1250.00"),
        (RiskLimits(collar=0.05), order(1.0, limit=106.0), "outside the collar of 5.00%"),
        (RiskLimits(collar=0.05), order(1.0, price=94.0), "outside the collar"),
    ],
)
def test_each_limit_denies_an_order_that_passes_without_it(
    limits: RiskLimits, req: OrderRequest, why: str
) -> None:
    assert check(req, VIEW, RiskLimits(), "ACTIVE") is None  # the control
    reason = check(req, VIEW, limits, "ACTIVE")
    assert reason is not None and why in reason


def test_an_order_that_brings_exposure_down_passes_the_exposure_limits() -> None:
    tight = RiskLimits(max_position_notional=100.0, max_gross=100.0, max_net=100.0)
    assert check(order(-3.0), VIEW, tight, "ACTIVE") is None
    assert check(order(1.0), VIEW, tight, "ACTIVE") is not None


def test_halted_denies_everything_and_reducing_only_what_does_not_reduce() -> None:
    assert check(order(-1.0), VIEW, RiskLimits(), "ACTIVE") is None
    assert check(order(1.0), VIEW, RiskLimits(), "ACTIVE") is None
    assert check(order(-1.0), VIEW, RiskLimits(), "HALTED") == "HALTED: no order may go"
    assert check(order(1.0), VIEW, RiskLimits(), "REDUCING").startswith("REDUCING")
    assert check(order(-1.0), VIEW, RiskLimits(), "REDUCING") is None
    # a sell of 13 flips 12 long to 1 short: not a reduction
    assert check(order(-13.0), VIEW, RiskLimits(), "REDUCING").startswith("REDUCING")
    assert check(order(-12.0), VIEW, RiskLimits(), "REDUCING") is None
    assert check(order(2.0, sym="Y", price=50.0), VIEW, RiskLimits(), "REDUCING") is None
    assert check(order(1.0), VIEW, RiskLimits(), "PAUSED") is not None  # unknown: closed


def test_the_order_rate_limit_in_a_decision() -> None:
    led = Ledger("w", cash=10_000.0, prices={"A": 10.0, "B": 10.0, "C": 10.0})
    led.targets, led.weights = {"s": {"A": 0.1, "B": 0.1, "C": 0.1}}, {"s": 1.0}
    free = decide(led, {}, BookPolicy(), RateLimit(0, 60.0))
    assert [e["kind"] for e in free] == ["order", "order", "order"]
    limits = RiskLimits(max_orders=2, window_s=60.0)
    capped = decide(led, {}, BookPolicy(limits=limits), RateLimit(2, 60.0))
    assert [e["kind"] for e in capped] == ["order", "order", "denied"]
    assert "order rate over 2 in 60 s" in capped[2]["reason"]


def test_daily_loss_and_drawdown_halt_the_account() -> None:
    assert auto_state("ACTIVE", 96.0, 100.0, 100.0, RiskLimits()) == ("ACTIVE", "")
    assert auto_state("ACTIVE", 96.0, 100.0, 100.0, RiskLimits(daily_loss=0.03))[0] == "HALTED"
    assert auto_state("ACTIVE", 96.0, 100.0, 120.0, RiskLimits(max_drawdown=0.15))[0] == "HALTED"
    assert auto_state("ACTIVE", 96.0, 100.0, 110.0, RiskLimits(max_drawdown=0.15))[0] == "ACTIVE"


def test_a_loss_over_the_limit_halts_the_book_and_denies_its_next_order() -> None:
    led = Ledger("w", cash=1000.0, positions={"X": 10.0})
    led.apply({"kind": "mark", "prices": {"X": 100.0}, "ts": 0})  # equity 2000
    led.apply({"kind": "mark", "prices": {"X": 80.0}, "ts": 1})  # 1800: -10% on the day
    led.targets, led.weights = {"s": {"X": 0.9}}, {"s": 1.0}
    loose = decide(led, {}, BookPolicy(), RateLimit(0, 1))
    assert [e["kind"] for e in loose] == ["order"]
    events = decide(led, {}, BookPolicy(limits=RiskLimits(daily_loss=0.05)), RateLimit(0, 1))
    assert events[0]["kind"] == "state" and events[0]["state"] == "HALTED"
    assert "daily loss 10.00%" in events[0]["reason"]
    assert events[1]["kind"] == "denied" and events[1]["reason"].startswith("HALTED")
    assert not math.isnan(led.equity())
