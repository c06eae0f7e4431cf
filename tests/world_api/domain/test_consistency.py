"""The world's re-check of an update (``world_api.domain.consistency``): honest metrics
always pass, whatever the returns; a claim off by more than the tolerance is named with the
difference; the recomputed values agree with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.metrics import MetricSet
from world_api.domain.consistency import ATOL, RTOL, Inconsistent, recheck

DAY = 86_400 * 10**9

returns = st.lists(st.floats(-0.2, 0.2, allow_nan=False), min_size=2, max_size=80)


def pairs(r: list[float]) -> list[tuple[int, float]]:
    return [((i + 1) * DAY, x) for i, x in enumerate(r)]


@settings(max_examples=200, deadline=None)
@given(returns, st.sampled_from([252.0, 365.0]))
def test_honest_metrics_always_pass(r, ppy):
    claimed = MetricSet(ppy).update(r).finite()
    recheck(len(r), claimed, pairs(r))


@settings(max_examples=100, deadline=None)
@given(returns, st.sampled_from(["total_return", "max_drawdown", "win_rate"]), st.floats(0.01, 5.0))
def test_a_lie_beyond_the_tolerance_is_named(r, name, off):
    honest = MetricSet(252).update(r).finite()
    lie = {name: honest[name] + off}
    assert off > ATOL + RTOL * abs(honest[name])
    with pytest.raises(Inconsistent, match=rf"metrics\.{name}: claimed .*off by"):
        recheck(len(r), lie, pairs(r))


def test_the_recomputed_values_match_numpy():
    r = np.random.default_rng(4).normal(0.001, 0.02, 250)
    eq = np.cumprod(1 + r)
    total = eq[-1] - 1
    mdd = -(eq / np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:] - 1).min()
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(252)
    recheck(250, {"total_return": total, "max_drawdown": mdd, "sharpe": sharpe}, pairs(r))
    with pytest.raises(Inconsistent, match=r"metrics\.sharpe"):
        recheck(250, {"sharpe": sharpe * 1.01}, pairs(r))
