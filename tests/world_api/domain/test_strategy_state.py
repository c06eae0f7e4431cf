"""A strategy's ring of returns: moments and aligned correlation against numpy references,
and an exact round trip through its stored form."""

from __future__ import annotations

import math

import numpy as np

from world_api.domain.strategy_state import MIN_OVERLAP, RING, StrategyState, aligned_corr


def state(sid: str, returns: np.ndarray, total: int | None = None) -> StrategyState:
    s = StrategyState(sid)
    s.returns.extend(returns.tolist())
    s.total_returns = len(returns) if total is None else total
    return s


def test_moments_match_numpy():
    r = np.random.default_rng(1).normal(0.001, 0.01, 300)
    s = state("a", r)
    assert s.mean_return() == np.mean(r) and s.vol() == np.std(r, ddof=1)
    assert math.isnan(state("b", r[:1]).vol())


def test_aligned_corr_uses_the_periods_both_rings_hold():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.01, 500)
    y = x + rng.normal(0, 0.005, 500)
    a = state("a", x[100:], total=500)  # its ring holds its periods 100..499
    b = state("b", y[:400])  # periods 0..399
    want = np.corrcoef(x[100:400], y[100:400])[0, 1]  # the 300 periods both hold
    assert math.isclose(aligned_corr(a, b), want, rel_tol=1e-12)
    assert aligned_corr(a, b) == aligned_corr(b, a)
    short = state("c", y[:MIN_OVERLAP - 1])  # too little overlap to be trusted
    assert math.isnan(aligned_corr(short, state("d", x[:200])))


def test_ring_is_bounded_and_round_trips_exactly():
    r = np.random.default_rng(3).normal(0, 0.01, RING + 50)
    s = state("a", r)
    assert len(s.returns) == RING and list(s.returns) == r[-RING:].tolist()
    again = StrategyState.from_dict(s.to_dict())
    assert list(again.returns) == list(s.returns) and again.total_returns == RING + 50
