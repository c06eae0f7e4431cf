"""Max drawdown against empyrical and a direct reference, merged or not."""

from __future__ import annotations

import empyrical as ep
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.metrics import MaxDrawdown, Sortino

returns_lists = st.lists(st.integers(-5_000, 5_000).map(lambda k: k / 1e4), min_size=1,
                         max_size=60)


def test_first_period_loss_is_a_drawdown_as_in_empyrical():
    r = np.array([-0.1, 0.05, 0.2])
    assert MaxDrawdown().update(r).get() == pytest.approx(-ep.max_drawdown(r))


@settings(max_examples=300, deadline=None)
@given(returns_lists, st.integers(0, 60))
def test_max_drawdown_merge_equals_reference(r, cut):
    r = np.array(r)
    eq = np.cumprod(1 + r)
    peak = np.maximum.accumulate(np.maximum(eq, 1.0))
    want = float(np.max(1 - eq / peak))
    a = MaxDrawdown().update(r[:cut])
    a += MaxDrawdown().update(r[cut:])
    assert a.get() == pytest.approx(want, rel=1e-12, abs=1e-15)


def test_sortino_merged_equals_empyrical():
    r = np.random.default_rng(5).normal(1e-3, 1e-2, 300)
    a = Sortino(252).update(r[:100])
    a += Sortino(252).update(r[100:])
    assert a.get() == pytest.approx(ep.sortino_ratio(r, annualization=252), rel=1e-9)
