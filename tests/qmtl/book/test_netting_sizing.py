"""Netting and sizing: the book's target is the sum of its strategies' targets (long and
short net), and the order rounded to lots never trades past the target (so never past a
limit the target kept)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.book.errors import BookError
from qmtl.book.model import Instrument
from qmtl.book.netting import StrategyTarget, net_targets
from qmtl.book.sizing import limit_price, order_qty

weights = st.floats(-2.0, 2.0, allow_nan=False)
symbols = st.sampled_from(["A", "B", "C"])
strategies = st.sampled_from(["s1", "s2", "s3", "s4"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(strategies, symbols, weights), max_size=12),
    st.dictionaries(strategies, st.floats(0.0, 1.0), min_size=1),
    st.floats(1.0, 1e7),
    st.fixed_dictionaries({s: st.floats(0.01, 1e5) for s in "ABC"}),
)
def test_the_book_target_is_the_sum_of_the_strategies_targets(
    rows: list[tuple[str, str, float]],
    ww: dict[str, float],
    equity: float,
    prices: dict[str, float],
) -> None:
    net = net_targets([StrategyTarget(*r) for r in rows], ww, equity, prices)
    # independent reference: each row on its own, summed per symbol by hand
    expect: dict[str, float] = {}
    for sid, sym, w in rows:
        expect[sym] = expect.get(sym, 0.0) + ww.get(sid, 0.0) * w * equity / prices[sym]
    assert set(net) == set(expect)
    for sym, q in expect.items():
        assert net[sym].qty == pytest.approx(q, rel=1e-9, abs=1e-9)
        assert math.fsum(net[sym].parts.values()) == pytest.approx(net[sym].qty, abs=1e-9)


def test_long_and_short_of_one_symbol_net_to_one_target() -> None:
    net = net_targets(
        [StrategyTarget("long", "BTC", 0.8), StrategyTarget("short", "BTC", -0.5)],
        {"long": 0.5, "short": 0.5},
        10_000.0,
        {"BTC": 100.0},
    )
    # 0.5*0.8*10000/100 = 40 long, 0.5*-0.5*10000/100 = -25 short: one target of 15
    assert net["BTC"].qty == pytest.approx(15.0)
    assert net["BTC"].parts == pytest.approx({"long": 40.0, "short": -25.0})


def test_a_bad_target_is_refused_with_where() -> None:
    with pytest.raises(BookError, match="target weight of s in X"):
        net_targets([StrategyTarget("s", "X", math.nan)], {"s": 1.0}, 1.0, {"X": 1.0})


lots = st.sampled_from([0.0, 0.001, 0.01, 0.1, 1.0, 5.0, 100.0])


@settings(max_examples=300, deadline=None)
@given(
    st.floats(-1e4, 1e4),
    st.floats(-1e4, 1e4),
    st.floats(-100, 100),
    st.floats(0.01, 1e4),
    lots,
    st.floats(0.0, 50.0),
    st.floats(0.0, 0.01),
)
def test_rounding_never_crosses_the_target_nor_a_limit(
    net: float,
    position: float,
    open_qty: float,
    price: float,
    lot: float,
    min_notional: float,
    band: float,
) -> None:
    inst = Instrument("X", lot=lot, min_notional=min_notional)
    equity = 1e6
    q = order_qty(net, position, open_qty, price, inst, equity, band=band)
    before, after = position + open_qty, position + open_qty + q
    lo, hi = min(before, net), max(before, net)
    # a hair under a whole lot (1e-9 of a lot, float noise) counts as the lot: lots_toward_zero
    tol = 1e-9 + 1e-9 * lot
    assert lo - tol <= after <= hi + tol  # between where it was and its target
    if q:
        if lot:
            assert abs(q / lot - round(q / lot)) < 1e-6  # whole lots
        assert abs(q) * price >= min_notional - 1e-9
        assert abs(q) * price / equity > band or net == 0.0
    # so a position limit the target keeps is kept by the order too
    cap = max(abs(before), abs(net))
    assert abs(after) <= cap + tol


def test_band_and_minimum_notional_hold_an_order_back_but_a_close_goes() -> None:
    inst = Instrument("X", lot=1.0)
    assert order_qty(101.0, 100.0, 0.0, 10.0, inst, 1e5, band=0.001) == 0.0  # 10 <= 100
    assert order_qty(120.0, 100.0, 0.0, 10.0, inst, 1e5, band=0.001) == 20.0
    assert order_qty(110.0, 100.0, 0.0, 10.0, inst, 1e5, min_notional=500.0) == 0.0
    assert order_qty(0.0, 3.0, 0.0, 10.0, inst, 1e5, min_notional=500.0) == -3.0
    # the exchange's own minimum notional holds back even a close (it would be rejected)
    assert order_qty(0.0, 3.0, 0.0, 10.0, Instrument("X", min_notional=50.0), 1e5) == 0.0
    # open orders count: target 10, held 4, 5 on order -> 1 more
    assert order_qty(10.0, 4.0, 5.0, 10.0, inst, 1e5) == 1.0


def test_limit_prices_round_in_the_orders_favour() -> None:
    inst = Instrument("X", tick=0.5)
    assert limit_price(100.7, inst, 1.0) == 100.5
    assert limit_price(100.2, inst, -1.0) == 100.5
    assert limit_price(100.5, inst, -1.0) == 100.5
