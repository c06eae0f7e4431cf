"""The pro forma and the correlation cap compare strategies on the bars they share, and the
world says how many: two strategies over partly overlapping periods against hand-computed
references, and the pro forma against a dictionary reference for random calendars."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.domain.world_returns import pro_forma

DAY = 86_400 * 10**9


def upd(sid: str, seq: int, sharpe: float, pairs: list[tuple[int, float]]) -> MetricsUpdate:
    return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="backtest",
                         as_of=pairs[-1][0], n_bars=len(pairs), metrics={"sharpe": sharpe},
                         returns=pairs)


def daily(first: int, last: int, seed: int) -> list[tuple[int, float]]:
    """Returns at the close of days ``first..last`` (both in)."""
    r = np.random.default_rng(seed).normal(0.0005, 0.01, last - first + 1)
    return [(d * DAY, float(x)) for d, x in zip(range(first, last + 1), r, strict=True)]


def test_two_partly_overlapping_strategies_are_combined_on_their_overlap_only():
    a, b = daily(0, 99, seed=1), daily(60, 159, seed=2)  # share days 60..99
    eng = WorldEngine(parse_policy("top_k: 2\nallocation: {method: equal}"))
    eng.ingest(upd("a", 1, 1.0, a))
    eng.ingest(upd("b", 1, 1.0, b))
    assert eng.weights() == {"a": 0.5, "b": 0.5}
    ra, rb = dict(a), dict(b)
    days = [d * DAY for d in range(60, 100)]
    want = [0.5 * ra[t] + 0.5 * rb[t] for t in days]  # by hand, the shared days only
    ts, r, metrics = eng.pro_forma()
    assert ts.tolist() == days
    np.testing.assert_allclose(r, want, rtol=0, atol=1e-17)
    x = np.array(want)
    assert math.isclose(metrics["total_return"], np.prod(1 + x) - 1, rel_tol=1e-12)
    assert metrics["n_bars"] == 40
    pf = eng.world_metrics()["pro_forma"]
    assert (pf["n_bars"], pf["shared_bars"]) == (40, 40)
    assert (pf["first_shared"], pf["last_shared"]) == (60 * DAY, 99 * DAY)
    assert math.isclose(pf["overlap"], 39 / 159)  # [60, 99] of [0, 159] days
    assert "uses only the 40 bars they share" in pf["warnings"][0]
    # the correlation the cap reads: Pearson over the 40 shared days, by hand
    xa, xb = np.array([ra[t] for t in days]), np.array([rb[t] for t in days])
    rho = ((xa - xa.mean()) * (xb - xb.mean())).mean() / (xa.std() * xb.std())
    assert math.isclose(eng.correlation("a", "b"), rho, rel_tol=1e-12)
    assert math.isclose(eng.correlation("a", "b"), np.corrcoef(xa, xb)[0, 1], rel_tol=1e-9)


def test_the_correlation_cap_sees_only_the_shared_bars():
    """b equals a on the days they share and is unrelated elsewhere: over the overlap the two
    are perfectly correlated, so the cap keeps only one of them."""
    a = daily(0, 99, seed=1)
    other = dict(daily(0, 159, seed=7))
    b = [(t, dict(a).get(t, other[t])) for t in sorted(other) if t >= 60 * DAY]
    eng = WorldEngine(parse_policy("top_k: 2\nmax_correlation: 0.9"))
    eng.ingest(upd("a", 1, 2.0, a))
    eng.ingest(upd("b", 1, 1.0, b))
    assert math.isclose(eng.correlation("a", "b"), 1.0, rel_tol=1e-12)
    assert set(eng.weights()) == {"a"}  # b is capped out by its correlation with a
    # on the union of their days, a missing return read as 0, they would pass the cap
    union = sorted(set(dict(a)) | set(dict(b)))
    za = np.array([dict(a).get(t, 0.0) for t in union])
    zb = np.array([dict(b).get(t, 0.0) for t in union])
    assert np.corrcoef(za, zb)[0, 1] < 0.9


def test_no_shared_bar_no_pro_forma_and_the_world_says_so():
    eng = WorldEngine(parse_policy("top_k: 2"))
    eng.ingest(upd("a", 1, 1.0, daily(0, 29, seed=1)))
    eng.ingest(upd("b", 1, 1.0, daily(40, 69, seed=2)))
    assert set(eng.weights()) == {"a", "b"}
    assert eng.pro_forma()[0].tolist() == []
    pf = eng.world_metrics()["pro_forma"]
    assert (pf["n_bars"], pf["shared_bars"], pf["first_shared"]) == (0, 0, None)
    assert "uses only the 0 bars they share" in pf["warnings"][0]


def test_the_shared_pro_forma_survives_a_rebuild_from_state():
    eng = WorldEngine(parse_policy("top_k: 2"))
    eng.ingest(upd("a", 1, 1.0, daily(0, 99, seed=1)))
    eng.ingest(upd("b", 1, 1.0, daily(60, 159, seed=2)))
    back = WorldEngine.from_state(eng.to_state())
    assert back.world_metrics() == eng.world_metrics()
    for x, y in zip(back.pro_forma()[:2], eng.pro_forma()[:2], strict=True):
        assert x.tolist() == y.tolist()


ranges = st.lists(
    st.tuples(st.floats(0.1, 2.0), st.integers(0, 30), st.integers(2, 30),
              st.lists(st.floats(-0.2, 0.2), min_size=30, max_size=30)),
    min_size=1, max_size=4,
)


@given(ranges)
@settings(max_examples=200, deadline=None)
def test_the_pro_forma_is_the_weighted_sum_on_the_common_times(parts):
    """Strategies of one interval, each over its own run of days: the pro forma holds
    exactly the days every one has, each the weighted sum of theirs in the order given."""
    series = [(w, {(start + i) * DAY: r[i] for i in range(n)}) for w, start, n, r in parts]
    common = sorted(set.intersection(*(set(p) for _, p in series)))
    ts, r = pro_forma([(w, np.array(sorted(p)), np.array([p[t] for t in sorted(p)]))
                       for w, p in series])
    assert ts.tolist() == common
    want = []
    for t in common:
        total = 0.0
        for w, p in series:
            total = total + w * p[t]
        want.append(total)
    assert r.tolist() == want
