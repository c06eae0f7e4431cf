"""Win rate, profit factor, exposure and turnover against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dataflows.metrics import Exposure, ProfitFactor, Turnover, WinRate


def test_hand_computed_counts():
    r = np.array([0.02, 0.0, -0.01, 0.03, -0.02, 0.0])
    assert WinRate().update(r).get() == pytest.approx(2 / 4)
    assert ProfitFactor().update(r).get() == pytest.approx(0.05 / 0.03)
    assert ProfitFactor().update([0.1, 0.0]).get() == math.inf
    assert Turnover(12).update([1.0, 0.0, 0.5, 0.5]).get() == pytest.approx(0.5 * 12)
    assert Exposure().update([1.0, 1.0, 0.0, 0.0]).get() == pytest.approx(0.5)


def test_a_nan_return_is_neither_a_gain_nor_a_loss():
    pf = ProfitFactor().update([0.2, float("nan"), -0.1])
    assert pf.get() == pytest.approx(2.0)
