"""Count, total return, CAGR and linearity against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from dataflows.metrics import Cagr, Linearity, MetricSet, TotalReturn

RETURNS = np.random.default_rng(42).normal(5e-4, 1e-2, 2_000)


def test_linearity_against_linregress():
    y = np.cumsum(np.log1p(RETURNS))
    t = np.arange(1, len(y) + 1)
    want = stats.linregress(t, y).rvalue ** 2
    assert Linearity().update(RETURNS).get() == pytest.approx(want, rel=1e-9)
    assert Linearity().update(np.full(50, 0.002)).get() == pytest.approx(1.0)


def test_total_return_and_cagr_against_numpy():
    r = RETURNS[:500]
    equity = float(np.prod(1.0 + r))
    assert TotalReturn().update(r).get() == pytest.approx(equity - 1.0, rel=1e-12)
    assert Cagr(252).update(r).get() == pytest.approx(equity ** (252 / 500) - 1.0, rel=1e-12)


def test_cagr_of_a_short_fast_run_is_inf_rather_than_an_error():
    # 10 minute bars up 5% each, annualized over 525,600 minutes: far beyond a float
    r = np.full(10, 0.05)
    assert Cagr(525_600).update(r).get() == math.inf
    m = MetricSet(525_600).update(r)
    assert m.get()["cagr"] == math.inf and m.finite()["cagr"] == 1e9
    assert Cagr(525_600).update(np.full(10, -0.05)).get() == -1.0  # underflow: all lost
