"""Returns with their times: correlation on shared timestamps and on the coarser strategy's
grid against pandas, states stored before times existed, every producer sending bar times,
and a submission that lowers the world's Sharpe getting the hint."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import qmtl
from connectors.data.synthetic import generate_bars
from qmtl.core.contracts import MetricsUpdate
from qmtl.submit import LocalWorld, _run
from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.domain.strategy_state import StrategyState, aligned_corr
from world_api.service import app as app_module
from world_api.service import tables as t
from world_api.service.app import create_app
from world_api.service.routers import world_returns as world_returns_router
from world_api.service.store import WorldInfo, open_store

HOUR = 3_600 * 10**9
DAY = 24 * HOUR
T0 = pd.Timestamp("2024-01-01", tz="UTC").value


def state(sid: str, s: pd.Series) -> StrategyState:
    out = StrategyState(sid)
    out.extend([(int(t), float(r)) for t, r in s.items()])
    return out


def test_correlation_on_shared_timestamps_equals_pandas():
    """A weekday calendar and a 24/7 one, both daily, with a gap: pandas aligns two Series on
    their index the same way."""
    rng = np.random.default_rng(4)
    days = pd.date_range("2024-01-02", periods=300, freq="D", tz="UTC")
    common = rng.normal(0, 0.01, len(days))
    every = pd.Series(common + rng.normal(0, 0.01, len(days)), index=days.as_unit("ns").asi8)
    weekdays = days[days.day_of_week < 5]
    wk = pd.Series(common[days.day_of_week < 5] + rng.normal(0, 0.01, len(weekdays)),
                   index=weekdays.as_unit("ns").asi8)
    wk = wk.drop(wk.index[40:70])  # a gap of its own
    want = wk.corr(every)
    got = aligned_corr(state("wk", wk), state("every", every))
    assert math.isclose(got, want, rel_tol=1e-12)
    assert 0.3 < got < 0.7  # the shared component shows


def test_correlation_across_intervals_compounds_the_finer_onto_the_coarser_grid():
    rng = np.random.default_rng(5)
    hours = T0 + HOUR * np.arange(1, 24 * 120 + 1)  # 120 days of hourly bars
    hourly = pd.Series(rng.normal(0, 0.003, len(hours)), index=hours)
    growth = (1 + hourly).groupby((hours - 1) // DAY).prod()  # hours in (day - 1d, day]
    day_ts = (growth.index.to_numpy() + 1) * DAY
    daily = pd.Series(0.8 * (growth.to_numpy() - 1) + rng.normal(0, 0.004, len(growth)),
                      index=day_ts)
    daily = daily.iloc[10:]  # the daily strategy starts later
    a, b = state("daily", daily), state("hourly", hourly)
    b_kept = hourly.iloc[-2000:]  # the ring keeps the last 2,000 hours
    # pandas reference: compound the hourly returns into each daily bar (prev, ts], keep the
    # bars the kept hourly series covers from start to end
    binned = b_kept.groupby(pd.cut(b_kept.index, [T0 - 1, *daily.index], right=True),
                            observed=False).apply(lambda x: (1 + x).prod() - 1)
    compounded = pd.Series(binned.to_numpy()[1:], index=daily.index[1:])
    keep = (daily.index[:-1] >= b_kept.index[0]) & (daily.index[1:] <= b_kept.index[-1])
    want = daily.iloc[1:][keep].corr(compounded[keep])
    got = aligned_corr(a, b)
    assert keep.sum() >= 20 and math.isclose(got, want, rel_tol=1e-9)
    assert aligned_corr(b, a) == got
    assert got > 0.5


def test_the_engine_blocks_a_twin_on_another_calendar():
    """Correlation on time: a twin that reports on weekdays only is still a twin."""
    rng = np.random.default_rng(6)
    days = T0 + DAY * np.arange(1, 201)
    base = rng.normal(0, 0.01, len(days))
    weekday = pd.DatetimeIndex(days - 1, tz="UTC").day_of_week < 5
    eng = WorldEngine(parse_policy("top_k: 3\nmax_correlation: 0.8"))

    def upd(sid, sharpe, ts, r):
        return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=1, mode="backtest",
                             as_of=int(ts[-1]), n_bars=len(ts), metrics={"sharpe": sharpe},
                             returns=list(zip(ts.tolist(), r.tolist(), strict=True)))

    eng.ingest(upd("lead", 2.0, days, base))
    eng.ingest(upd("twin", 1.5, days[weekday], base[weekday] * 2))
    eng.ingest(upd("other", 1.0, days, rng.normal(0, 0.01, len(days))))
    assert set(eng.weights()) == {"lead", "other"}
    assert eng.view("twin").hints == ["correlation 1.00 with 'lead' > max 0.8"]


def test_a_stored_state_without_times_loads_without_its_ring(store_url):
    """A state row written before returns had times keeps its metrics, activation and
    weight; its ring is dropped (no times to place it) and refills from the next update."""
    store = open_store(store_url)
    try:
        store.create_world(WorldInfo(id="w1"))
        old = {"sid": "a", "metrics": {"sharpe": 1.2}, "n_bars": 50, "seqs": {"r": 5},
               "run_bars": {"r": 50}, "returns": [0.01, -0.02, 0.03], "total_returns": 3,
               "active": True, "weight": 1.0, "changed_at": 10}
        with store.transaction() as conn:
            conn.execute(t.strategy_state.insert().values(world="w1", strategy_id="a",
                                                          state=json.dumps(old)))
        eng = store.load_engine("w1")
        s = eng.strategies["a"]
        assert (len(s.returns), len(s.ts)) == (0, 0)
        assert (s.metrics, s.n_bars, s.active, s.weight) == ({"sharpe": 1.2}, 50, True, 1.0)
        eng.ingest(MetricsUpdate(world="w1", strategy_id="a", run_id="r", seq=6, mode="live",
                                 as_of=7, n_bars=52, metrics={"sharpe": 1.2},
                                 returns=[(6, 0.01), (7, 0.02)]))
        assert list(s.ts) == [6, 7] and eng.realized.points() == ([6, 7], [0.01, 0.02])
    finally:
        store.close()


class Long(qmtl.Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return 1.0


def test_a_backtest_sends_each_return_with_its_bar_close_time():
    data = {"A": generate_bars(400, seed=3)}
    res = qmtl.backtest(Long, data=data)
    local = LocalWorld("{}")  # what validate evaluates: it holds what was sent
    _run(Long, "local", local, strategy_id="L", returns=None, auto_returns=True, dry_run=True,
         options={"data": data}, params=None)
    s = local.engine.strategies["L"]
    assert list(s.ts) == res.ts.tolist() and list(s.returns) == res.returns.tolist()


def test_given_series_carry_their_index_or_bar_positions():
    local_ts = pd.date_range("2024-03-01", periods=30, freq="D", tz="US/Eastern")
    series = pd.Series(np.random.default_rng(1).normal(0, 0.01, 30), index=local_ts)
    for given, want in [
        (series, local_ts.as_unit("ns").asi8.tolist()),
        (series.to_numpy(), [(i + 1) * DAY for i in range(30)]),  # bar i closes i+1 days in
    ]:
        local = LocalWorld("{}")
        _run(Long, "local", local, strategy_id="L", returns=given, auto_returns=True,
             dry_run=True, options={}, params=None)
        assert list(local.engine.strategies["L"].ts) == want
    local = LocalWorld("{}")
    res = _run(Long, "local", local, strategy_id="L", returns=series.iloc[[0, 2, 1]],
               auto_returns=True, dry_run=True, options={}, params=None)
    assert res.status == "rejected"
    assert res.improvement_hints == [
        "returns[2]: its time is not after the one before (a returns series' index must "
        "strictly increase)"]


def test_a_strategy_that_lowers_the_worlds_sharpe_gets_the_hint(tmp_path):
    rng = np.random.default_rng(8)
    days = pd.date_range("2024-01-02", periods=250, freq="D", tz="UTC")
    steady = pd.Series(0.002 + rng.normal(0, 0.004, len(days)), index=days)
    noisy = pd.Series(-0.001 + rng.normal(0, 0.03, len(days)), index=days)
    with serve(create_app(str(tmp_path / "w.db"), insecure_dev=True)) as url:
        with WorldServiceClient(url) as api:
            api.create_world("w1")
            api.put_policy("w1", "top_k: 2\nallocation: {method: equal}")
        first = qmtl.submit(Long, "w1", url, strategy_id="steady", returns=steady)
        second = qmtl.submit(Long, "w1", url, strategy_id="noisy", returns=noisy)
        with WorldServiceClient(url) as api:
            now = api.world_metrics("w1")["pro_forma"]["metrics"]
    assert first.status == "active" and second.status == "active"
    assert first.world_metrics["before"] == {"sharpe": 0.0, "total_return": 0.0,
                                             "max_drawdown": 0.0}
    assert not any("lowers the world" in h for h in first.improvement_hints)
    before, after = second.world_metrics["before"], second.world_metrics["after"]
    assert before == first.world_metrics["after"]
    assert after == {k: now[k] for k in ("sharpe", "total_return", "max_drawdown")}
    # the reference: 0.5/0.5 of both on the shared days vs the steady one alone, annualized
    # as a backtest is, by the bars a year of the data (every calendar day: 365)
    both = 0.5 * steady + 0.5 * noisy
    assert after["sharpe"] == pytest.approx(both.mean() / both.std() * math.sqrt(365), rel=1e-9)
    assert before["sharpe"] == pytest.approx(steady.mean() / steady.std() * math.sqrt(365),
                                             rel=1e-9)
    assert second.world_metrics["change"]["sharpe"] == pytest.approx(
        after["sharpe"] - before["sharpe"])
    assert after["sharpe"] < before["sharpe"]
    assert (f"joining lowers the world's pro forma sharpe from {before['sharpe']:.2f} to "
            f"{after['sharpe']:.2f}") in second.improvement_hints


def test_a_service_without_the_world_return_still_takes_submissions(tmp_path, monkeypatch):
    """An older WorldService has no GET /worlds/{id}/metrics (405 on the ingest path): the
    submission works, and its world_metrics are empty."""
    older = [r for r in app_module.ROUTERS if r is not world_returns_router.router]
    monkeypatch.setattr(app_module, "ROUTERS", older)
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    days = pd.date_range("2024-01-02", periods=60, freq="D", tz="UTC")
    with serve(app) as url:
        with WorldServiceClient(url) as api:
            api.create_world("w1")
        res = qmtl.submit(Long, "w1", url, strategy_id="s",
                          returns=pd.Series(np.linspace(-0.01, 0.01, 60), index=days))
    assert res.status == "active" and res.world_metrics == {}
