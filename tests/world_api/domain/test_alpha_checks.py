"""Issue 28 §5 checks: max symbol weight, the deterministic half universe and its Sharpe
ratio, the out-of-sample Sharpe gate; references are pandas/numpy hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from qmtl.core.contracts import MetricsUpdate
from world_api.domain import records
from world_api.domain.alpha_checks import (
    half_universe,
    half_universe_ratio,
    max_symbol_weight,
    oos_sharpe,
)
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import OosSharpe, PolicyError, parse_policy

DAY = 86_400 * 10**9
RNG = np.random.default_rng(28)


def pd_sharpe(r: pd.Series, ppy: float) -> float:
    return r.mean() / r.std() * math.sqrt(ppy)  # pandas std is ddof=1


def test_max_symbol_weight_equals_pandas():
    w = pd.DataFrame(RNG.normal(0, 1, (40, 5)), columns=list("ABCDE"))
    w.iloc[3] = 0.0  # a flat bar is skipped
    a = w.abs()
    gross = a.sum(axis=1)
    ref = (a.max(axis=1)[gross > 0] / gross[gross > 0]).max()
    assert max_symbol_weight(w.to_numpy()) == pytest.approx(ref, rel=1e-12)
    assert max_symbol_weight(np.array([[0.0, 2.0, 0.0]])) == 1.0


def test_half_universe_is_deterministic():
    syms = [f"S{i:03d}" for i in range(11)]
    shuffled = list(RNG.permutation(syms))
    assert half_universe(shuffled) == half_universe(syms) == half_universe(reversed(syms))
    assert half_universe(syms) == ["S000", "S002", "S004", "S006", "S008", "S010"]


def test_half_universe_ratio_equals_hand_computation():
    full, half = RNG.normal(0.001, 0.01, 300), RNG.normal(0.0005, 0.01, 300)
    ref = pd_sharpe(pd.Series(half), 252) / pd_sharpe(pd.Series(full), 252)
    assert half_universe_ratio(half, full, 252) == pytest.approx(ref, rel=1e-12)
    assert math.isnan(half_universe_ratio(half, np.zeros(300), 252))


def test_oos_sharpe_equals_last_n_by_hand():
    r = RNG.normal(0.001, 0.01, 500)
    ref = pd_sharpe(pd.Series(r).iloc[-60:], 365)
    assert oos_sharpe(r, 60, 365) == pytest.approx(ref, rel=1e-12)
    assert math.isnan(oos_sharpe(r[:10], 60, 365))


def test_gates_for_check_metrics_pass_and_fail_with_hints():
    p = parse_policy("gates: {max_symbol_weight: '<= 0.2', half_universe_ratio: '>= 0.5'}")
    assert p.gates["max_symbol_weight"].check(0.15)
    assert p.gates["max_symbol_weight"].describe("max_symbol_weight", 0.35) == (
        "max_symbol_weight 0.35 > gate 0.2")
    assert p.gates["half_universe_ratio"].describe("half_universe_ratio", 0.3) == (
        "half_universe_ratio 0.3 < gate 0.5")


def update(sid: str, returns: np.ndarray, **metrics: float) -> MetricsUpdate:
    n = len(returns)
    return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=1, mode="backtest",
                         as_of=n, n_bars=n, metrics={"sharpe": 1.0, **metrics},
                         returns=[(i * DAY, float(x)) for i, x in enumerate(returns)])


def test_engine_oos_gate_passes_and_fails_against_hand_sharpe():
    eng = WorldEngine(parse_policy(
        "oos_sharpe: {bars: 60, min: 0.5}\ngates: {max_symbol_weight: '<= 0.3'}"))
    good = np.r_[RNG.normal(0.0, 0.01, 306), RNG.normal(0.003, 0.01, 60)]
    bad = np.r_[RNG.normal(0.003, 0.01, 306), RNG.normal(-0.003, 0.01, 60)]
    # 366 daily times: 365 periods a year (world_returns.annualization)
    ref_good = pd_sharpe(pd.Series(good).iloc[-60:], 365)
    ref_bad = pd_sharpe(pd.Series(bad).iloc[-60:], 365)
    assert ref_good >= 0.5 > ref_bad
    eng.ingest(update("good", good, max_symbol_weight=0.25))
    eng.ingest(update("bad", bad, max_symbol_weight=0.25))
    eng.ingest(update("conc", good, max_symbol_weight=0.6))
    eng.ingest(update("nomet", good))
    assert eng.view("good").status == "active" and eng.view("good").hints == []
    assert eng.view("bad").hints == [
        f"oos_sharpe {ref_bad:.4g} over the last 60 bars < gate 0.5"]
    assert eng.view("conc").hints == ["max_symbol_weight 0.6 > gate 0.3"]
    assert eng.view("nomet").hints == [
        "max_symbol_weight missing: the world's gate needs it"]
    short = WorldEngine(parse_policy("oos_sharpe: {bars: 60, min: 0.5}"))
    short.ingest(update("s", good[:30]))
    assert short.view("s").hints == ["only 30 bars in the record < oos_sharpe bars 60"]


def test_oos_policy_is_checked():
    assert OosSharpe.model_fields["bars"].metadata[-1].le == records.RING
    with pytest.raises(PolicyError, match=r"oos_sharpe\.bars"):
        parse_policy("oos_sharpe: {bars: 1, min: 0.5}")
    with pytest.raises(PolicyError, match="oos_sharpe"):
        parse_policy("oos_sharpe: {bars: 60}")
