"""A strategy's ring of timed returns: moments and aligned correlation against numpy
references, and an exact round trip through its stored form."""

from __future__ import annotations

import math

import numpy as np

from world_api.domain.strategy_state import MIN_OVERLAP, RING, StrategyState, aligned_corr


def state(sid: str, returns: np.ndarray, first: int = 0) -> StrategyState:
    """A strategy whose returns are at times ``first, first + 1, ...``."""
    s = StrategyState(sid)
    s.extend([(first + i, float(r)) for i, r in enumerate(returns)])
    return s


def test_moments_match_numpy():
    r = np.random.default_rng(1).normal(0.001, 0.01, 300)
    s = state("a", r)
    assert s.mean_return() == np.mean(r) and s.vol() == np.std(r, ddof=1)
    assert math.isnan(state("b", r[:1]).vol())


def test_aligned_corr_uses_the_times_both_rings_hold():
    rng = np.random.default_rng(2)
    x = rng.normal(0, 0.01, 500)
    y = x + rng.normal(0, 0.005, 500)
    a = state("a", x[100:], first=100)  # times 100..499
    b = state("b", y[:400])  # times 0..399
    want = np.corrcoef(x[100:400], y[100:400])[0, 1]  # the 300 times both hold
    assert math.isclose(aligned_corr(a, b), want, rel_tol=1e-12)
    assert aligned_corr(a, b) == aligned_corr(b, a)
    short = state("c", y[:MIN_OVERLAP - 1])  # too little overlap to be trusted
    assert math.isnan(aligned_corr(short, state("d", x[:200])))


def test_returns_at_or_before_the_latest_kept_time_are_dropped():
    s = state("a", np.array([0.1, 0.2, 0.3]))  # times 0, 1, 2
    assert s.extend([(1, 9.0), (2, 9.0), (3, 0.4)]) == 1
    assert list(s.ts) == [0, 1, 2, 3] and list(s.returns) == [0.1, 0.2, 0.3, 0.4]
    assert s.total_returns == 4


def test_ring_is_bounded_and_round_trips_exactly():
    r = np.random.default_rng(3).normal(0, 0.01, RING + 50)
    s = state("a", r, first=10**18)
    assert len(s.returns) == RING and list(s.returns) == r[-RING:].tolist()
    assert list(s.ts) == list(range(10**18 + 50, 10**18 + RING + 50))
    again = StrategyState.from_dict(s.to_dict())
    assert list(again.returns) == list(s.returns) and again.total_returns == RING + 50
    assert list(again.ts) == list(s.ts)


def test_a_state_stored_before_timed_returns_loads_without_its_ring():
    """An older stored state (returns as a JSON list or base64 floats, no times) keeps its
    metrics, seqs, activation and weight; its ring is dropped (no times to place it)."""
    s = state("a", np.array([0.1, 0.2]))
    s.metrics, s.n_bars, s.seqs, s.active, s.weight = {"sharpe": 1.0}, 2, {"r": 2}, True, 0.5
    for old in ({"returns": [0.1, 0.2]}, {"returns_b64": s.to_dict()["returns_b64"]}):
        d = {k: v for k, v in s.to_dict().items() if k not in ("ts_b64", "returns_b64")}
        back = StrategyState.from_dict({**d, **old})
        assert len(back.returns) == len(back.ts) == 0
        assert (back.metrics, back.n_bars, back.seqs, back.active, back.weight) == (
            {"sharpe": 1.0}, 2, {"r": 2}, True, 0.5)
        assert back.extend([(1, 0.3)]) == 1  # refills from the next updates
