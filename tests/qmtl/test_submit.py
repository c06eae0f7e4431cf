"""validate(): the returns precedence and the hints, against a policy evaluated locally."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from dataflows.metrics import MetricSet
from qmtl import Strategy, backtest, validate

DATA = {"A": generate_bars(600, seed=4)}
RNG = np.random.default_rng(3)


class Long(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return 1.0


class OwnReturns(Strategy):
    def returns(self):
        return np.full(400, 0.001)


class OwnEquity(Strategy):
    def equity(self):
        return np.array([100.0, 110.0, 99.0])


class Nothing(Strategy):
    pass


def test_derived_returns_match_backtest_metrics():
    res = validate(Long, data=DATA)
    want = backtest(Long, data=DATA).metrics
    assert res.status == "active" and res.weight == 1.0 and res.rank == 1
    assert res.metrics["sharpe"] == pytest.approx(want["sharpe"], rel=1e-12)
    assert res.n_bars == 600 and res.dry_run


def test_explicit_returns_win_over_everything():
    given = RNG.normal(0.002, 0.01, 300)
    res = validate(OwnReturns, returns=given, policy="min_bars: 100")
    want = MetricSet(252).update(given).get()
    assert res.metrics["total_return"] == pytest.approx(want["total_return"], rel=1e-12)
    assert res.n_bars == 300


def test_strategy_supplied_returns_and_equity():
    assert validate(OwnReturns).n_bars == 400
    res = validate(OwnEquity)
    assert res.metrics["total_return"] == pytest.approx(99.0 / 100.0 - 1.0)


def test_no_source_of_returns_is_rejected_with_a_reason():
    res = validate(Nothing)
    assert res.status == "rejected"
    assert res.improvement_hints == [
        "no returns: the strategy defines no signal(), returns(), equity() or pnl()"]
    res = validate(Long, data=DATA, auto_returns=False)
    assert res.status == "rejected" and "no returns" in res.improvement_hints[0]


def test_gate_hint_carries_numbers():
    res = validate(Long, data=DATA, policy={"gates": {"sharpe": ">= 50"}})
    assert res.status == "rejected"
    assert res.improvement_hints[0].startswith("sharpe ")
    assert res.improvement_hints[0].endswith("< gate 50")
