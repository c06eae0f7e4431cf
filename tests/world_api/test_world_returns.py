"""The world's own return, realized and pro forma, against an independent pandas reference
on strategies with different calendars and intervals, activations changing mid-stream and a
strategy reporting late; late returns by hand; the metrics against hand formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.returns_scenario import HOUR, POLICY, Reference, updates
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.domain.world_returns import ReturnSeries, annualization, pro_forma, with_equity


def run(rounds: int, seed: int = 0, check_every: bool = False) -> tuple[WorldEngine, Reference]:
    eng, ref = WorldEngine(parse_policy(POLICY)), Reference()
    for u in updates(rounds, seed):
        ref.before(u)
        ref.after(eng.ingest(u))
        if check_every:
            assert_same(eng, ref)
    return eng, ref


def assert_same(eng: WorldEngine, ref: Reference) -> None:
    ts, r = eng.realized.arrays()
    want = ref.realized()
    assert ts.tolist() == want.index.tolist()
    np.testing.assert_allclose(r, want.to_numpy(dtype=float), rtol=1e-12, atol=1e-16)
    pts, pr, _ = eng.pro_forma()
    pwant = ref.pro_forma()
    assert pts.tolist() == pwant.index.tolist()
    # an hourly strategy's day compounds 24 returns (the engine by a ratio of cumulative
    # products, the reference by a product): a few ulps of 1.0 apart
    np.testing.assert_allclose(pr, pwant.to_numpy(dtype=float), rtol=1e-12, atol=1e-15)


def test_realized_and_pro_forma_equal_the_reference_after_every_update():
    eng, _ = run(6, check_every=True)
    assert len(eng.realized) > 0


def test_activations_change_and_late_returns_land_in_the_past():
    """The scenario does what it claims: the active set changes mid-stream, and the late
    strategy, while active, adds to times before the world's latest point."""
    eng, ref = WorldEngine(parse_policy(POLICY)), Reference()
    seen_sets, late = set(), 0
    for u in updates(10, seed=3):
        ref.before(u)
        latest = eng.realized.arrays()[0][-1:]
        if u.strategy_id == "lag" and eng.weights().get("lag") and len(latest):
            late += sum(t < latest[0] for t, _ in u.returns)
        ref.after(eng.ingest(u))
        seen_sets.add(tuple(sorted(eng.weights())))
    assert len(seen_sets) >= 3, seen_sets
    assert late > 0
    assert_same(eng, ref)


def test_the_ring_bounds_the_pro_forma_history():
    eng, ref = run(14, seed=1)  # the hourly strategy streams 14 * 168 > 2,000 returns
    assert len(ref.kept["hr"]) > 2_000 and len(eng.strategies["hr"].ts) == 2_000
    assert_same(eng, ref)


def test_late_returns_by_hand():
    """a is active with weight 1 from its second update; b (weight 0.5 after the rebalance)
    reports times before a's latest: its weighted returns add to (or insert) those points and
    the equity after them follows."""
    eng = WorldEngine(parse_policy("allocation: {method: equal}"))

    def upd(sid, seq, pairs):
        return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="live",
                             as_of=pairs[-1][0], n_bars=seq, metrics={"sharpe": 1.0},
                             returns=pairs)

    eng.ingest(upd("a", 1, [(1, 0.5)]))  # activates a: its own return is before that
    assert len(eng.realized) == 0
    eng.ingest(upd("a", 2, [(2, 0.1), (4, 0.2)]))  # weight 1
    assert eng.realized.points() == ([2, 4], [0.1, 0.2])
    eng.ingest(upd("b", 1, [(1, 9.0)]))  # activates b: both 0.5 from their next returns
    assert eng.weights() == {"a": 0.5, "b": 0.5}
    eng.ingest(upd("b", 2, [(2, 0.4), (3, -0.2)]))  # late: before a's 4
    ts, r = eng.realized.points()
    assert ts == [2, 3, 4] and r == pytest.approx([0.1 + 0.2, -0.1, 0.2])
    points = with_equity(*eng.realized.arrays())
    assert [p["equity"] for p in points] == pytest.approx([1.3, 1.3 * 0.9, 1.3 * 0.9 * 1.2])
    # pro forma: today's 0.5/0.5 over the bars both kept histories share (a has 1, 2, 4;
    # b has 1, 2, 3)
    pts, pr, _ = eng.pro_forma()
    assert pts.tolist() == [1, 2]
    assert pr.tolist() == pytest.approx([0.5 * 0.5 + 0.5 * 9.0, 0.5 * 0.1 + 0.5 * 0.4])
    pf = eng.world_metrics()["pro_forma"]
    assert (pf["shared_bars"], pf["first_shared"], pf["last_shared"]) == (2, 1, 2)


def test_a_deactivated_strategy_stops_earning_from_its_next_return():
    eng = WorldEngine(parse_policy("gates: {sharpe: '>= 1'}"))

    def upd(seq, sharpe, pairs):
        return MetricsUpdate(world="w", strategy_id="a", run_id="r", seq=seq, mode="live",
                             as_of=pairs[-1][0], n_bars=seq, metrics={"sharpe": sharpe},
                             returns=pairs)

    eng.ingest(upd(1, 2.0, [(1, 0.1)]))
    eng.ingest(upd(2, 0.5, [(2, 0.2)]))  # earned with weight 1, then deactivated
    eng.ingest(upd(3, 0.5, [(3, 0.3)]))  # weight 0: adds nothing
    assert eng.realized.points() == ([2], [0.2])
    assert eng.pro_forma()[0].tolist() == []  # nobody is active today


def test_world_metrics_equal_hand_formulas():
    eng, ref = run(6, seed=2)
    r = ref.realized()
    gaps = np.diff(r.index.to_numpy())
    assert np.median(gaps) == HOUR  # mostly hourly points, some missing
    years = (r.index[-1] - r.index[0]) / (365 * 24 * HOUR)
    ppy = (len(r) - 1) / years  # as a backtest counts them: its points a year
    m = eng.world_metrics()["realized"]
    assert m["n_bars"] == len(r)
    x = r.to_numpy()
    equity = np.cumprod(1 + x)
    assert m["metrics"]["total_return"] == pytest.approx(equity[-1] - 1, rel=1e-9)
    assert m["metrics"]["sharpe"] == pytest.approx(x.mean() / x.std(ddof=1) * math.sqrt(ppy),
                                                   rel=1e-9)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))
    dd = 1 - np.concatenate([[1.0], equity]) / peak
    assert m["metrics"]["max_drawdown"] == pytest.approx(dd.max(), rel=1e-9)
    pf = ref.pro_forma().to_numpy()
    pm = eng.world_metrics()["pro_forma"]
    assert pm["n_bars"] == len(pf)
    assert pm["metrics"]["total_return"] == pytest.approx(np.prod(1 + pf) - 1, rel=1e-9)


def test_annualization_counts_the_points_a_year_as_a_backtest_does():
    day = 24 * HOUR
    weekdays = pd.bdate_range("2024-01-01", periods=30).as_unit("ns").asi8  # Mon 1 Jan-Fri 9 Feb
    assert annualization(weekdays) == pytest.approx(29 / (39 / 365), rel=1e-12)
    assert annualization(np.arange(0, 50 * HOUR, HOUR)) == pytest.approx(8760.0, rel=1e-12)
    assert annualization(np.arange(0, 50 * 5 * 60 * 10**9, 5 * 60 * 10**9)) == pytest.approx(
        365 * 24 * 12, rel=1e-12)
    assert annualization(np.array([0, day])) == pytest.approx(365.0)
    assert annualization(np.array([day])) == 252.0  # one point: the daily convention


def test_return_series_and_pro_forma_primitives():
    rs = ReturnSeries()
    rs.add([(5, 0.1), (7, 0.2)], 1.0)
    rs.add([(6, 0.3), (7, 0.1)], 0.5)
    assert rs.points() == ([5, 6, 7], [0.1, 0.15, 0.25])
    assert rs.dirty == {5, 6, 7}
    ts, r = pro_forma([(1.0, np.array([3, 1]), np.array([0.3, 0.1]))])  # any order in
    assert ts.tolist() == [1, 3] and r.tolist() == [0.1, 0.3]


def test_the_engine_state_round_trips_the_world_return():
    eng, _ = run(4, seed=4)
    back = WorldEngine.from_state(eng.to_state())
    assert back.realized.points() == eng.realized.points()
    for a, b in zip(back.pro_forma()[:2], eng.pro_forma()[:2], strict=True):
        assert a.tolist() == b.tolist()
    assert back.world_metrics() == eng.world_metrics()


def test_the_stamp_moves_only_when_the_world_return_may_have():
    eng = WorldEngine(parse_policy("gates: {sharpe: '>= 1'}"))

    def upd(sid, seq, sharpe, t):
        return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="live",
                             as_of=t, n_bars=seq, metrics={"sharpe": sharpe},
                             returns=[(t, 0.01)])

    eng.ingest(upd("a", 1, 2.0, 1))
    stamp = eng.world_stamp()
    eng.ingest(upd("b", 1, 0.5, 1))  # rejected: neither realized nor pro forma move
    assert eng.world_stamp() == stamp
    eng.ingest(upd("a", 2, 2.0, 2))  # active: both move
    assert eng.world_stamp() != stamp
