"""The incremental world engine: gates, ranks, correlation, hysteresis, changes, state."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from qmtl.core.contracts import MetricsUpdate
from tests import procs
from world_api.domain.evaluator import StaleUpdate, WorldEngine
from world_api.domain.policy import parse_policy

RNG = np.random.default_rng(0)
BASE = RNG.normal(0.001, 0.01, 200)


def upd(sid, seq=1, n_bars=600, run="r1", returns=None, **metrics):
    """An update whose returns are those of bars ``n_bars - len + 1 .. n_bars`` (bar i's
    close time is i)."""
    metrics = {"sharpe": 1.0, "max_drawdown": 0.1, **metrics}
    r = list(RNG.normal(0.001, 0.01, 50) if returns is None else returns)
    return MetricsUpdate(world="w", strategy_id=sid, run_id=run, seq=seq, mode="backtest",
                         as_of=n_bars, n_bars=n_bars, metrics=metrics,
                         returns=[(n_bars - len(r) + 1 + i, float(x)) for i, x in enumerate(r)])


def test_gates_min_bars_and_hints():
    eng = WorldEngine(parse_policy("min_bars: 500\ngates: {sharpe: '>= 0.8'}"))
    eng.ingest(upd("low", sharpe=0.42))
    eng.ingest(upd("short", n_bars=120))
    eng.ingest(upd("good", sharpe=1.2))
    assert eng.view("low").hints == ["sharpe 0.42 < gate 0.8"]
    assert eng.view("low").status == "rejected"
    assert eng.view("short").hints == ["only 120 bars < min_bars 500: extend --start"]
    assert eng.view("good").status == "active"
    assert eng.weights() == {"good": 1.0}


def test_top_k_and_rank_hint():
    eng = WorldEngine(parse_policy("top_k: 2"))
    for i, sharpe in enumerate([0.5, 2.0, 1.0]):
        eng.ingest(upd(f"s{i}", sharpe=sharpe))
    assert set(eng.weights()) == {"s1", "s2"}
    assert eng.view("s0").hints == ["rank 3 > top_k 2"]
    assert eng.view("s0").status == "candidate"


def test_correlated_candidate_is_skipped():
    eng = WorldEngine(parse_policy("top_k: 3\nmax_correlation: 0.8"))
    eng.ingest(upd("lead", sharpe=2.0, returns=BASE))
    eng.ingest(upd("twin", sharpe=1.5, returns=BASE * 2 + 1e-4))
    eng.ingest(upd("other", sharpe=1.0, returns=RNG.normal(0, 0.01, 200)))
    assert set(eng.weights()) == {"lead", "other"}
    assert eng.view("twin").hints == ["correlation 1.00 with 'lead' > max 0.8"]


def test_hysteresis_keeps_incumbent_within_margin():
    eng = WorldEngine(parse_policy("top_k: 1\nhysteresis: {margin: 0.5}\nscore: {sharpe: 1}"))
    eng.ingest(upd("inc", sharpe=1.0))
    eng.ingest(upd("new", sharpe=1.1))
    # two candidates have z-scores -1 and +1: the newcomer wins by 2 > margin 0.5
    assert eng.weights() == {"new": 1.0}
    eng2 = WorldEngine(parse_policy("top_k: 1\nhysteresis: {margin: 2.5}"))
    eng2.ingest(upd("inc", sharpe=1.0))
    changes = eng2.ingest(upd("new", sharpe=1.1))  # beaten by 2 <= margin 2.5: stays
    assert eng2.weights() == {"inc": 1.0} and changes == []


def test_changes_are_emitted_once_and_stale_updates_refused():
    eng = WorldEngine(parse_policy("{}"))
    first = eng.ingest(upd("a", seq=1))
    assert [(c.strategy_id, c.active, c.weight) for c in first] == [("a", True, 1.0)]
    assert eng.ingest(upd("a", seq=2)) == []
    with pytest.raises(StaleUpdate, match="seq 2 of run 'r1' is not after the last seen seq 2"):
        eng.ingest(upd("a", seq=2))
    assert eng.ingest(upd("a", seq=1, run="r2")) == []  # another run has its own seqs


def test_weights_obey_caps_and_state_round_trips():
    eng = WorldEngine(parse_policy("top_k: 5\nallocation: {method: inverse_vol, max_weight: 0.3}"))
    for i in range(6):
        eng.ingest(upd(f"s{i}", sharpe=1.0 + i / 10, returns=RNG.normal(0, 0.01 * (i + 1), 100)))
    w = eng.weights()
    assert len(w) == 5 and all(0 <= v <= 0.3 + 1e-12 for v in w.values())
    assert sum(w.values()) <= 1 + 1e-12
    assert any("weight capped at max_weight 0.3" in h for v in eng.views() for h in v.hints)
    again = WorldEngine.from_state(eng.to_state())
    assert [v.model_dump() for v in again.views()] == [v.model_dump() for v in eng.views()]


ROUND_TRIP = """
import sys
import numpy as np
from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
mismatched = []
for seed in range(40):
    rng = np.random.default_rng(seed)
    eng = WorldEngine(parse_policy("top_k: 5\\nallocation: {method: inverse_vol, max_weight: 0.3}"))
    for i in range(6):
        eng.ingest(MetricsUpdate(world="w", strategy_id=f"s{i}", run_id="r", seq=1, mode="backtest",
                                 as_of=1, n_bars=600, metrics={"sharpe": 1.0 + i / 10},
                                 returns=list(enumerate(rng.normal(0, 0.01 * (i + 1), 100)))))
    again = WorldEngine.from_state(eng.to_state())
    if [v.model_dump() for v in again.views()] != [v.model_dump() for v in eng.views()]:
        mismatched.append(seed)
print(mismatched)
"""


@pytest.mark.parametrize("hash_seed", ["8", "14", "32"])
def test_round_trip_is_exact_whatever_the_hash_seed(hash_seed):
    # these string-hash seeds once ordered the active set differently in a rebuilt engine,
    # and the contribution total (a plain sum) moved in its last bit
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = procs.run([sys.executable, "-c", ROUND_TRIP], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("method", ["equal", "inverse_vol", "score", "risk_parity", "hrp"])
def test_every_method_gives_valid_weights(method):
    eng = WorldEngine(parse_policy(f"top_k: 4\nallocation: {{method: {method}, max_weight: 0.5}}"))
    for i in range(4):
        eng.ingest(upd(f"s{i}", sharpe=1.0 + i, returns=RNG.normal(0, 0.01 * (i + 1), 100)))
    w = np.array(list(eng.weights().values()))
    assert len(w) == 4 and (w >= 0).all() and (w <= 0.5 + 1e-12).all()
    assert w.sum() == pytest.approx(1.0)


def test_returns_a_restarted_run_sends_again_are_kept_once():
    """A live run restarted from a snapshot re-sends returns an earlier update covered: the
    world keeps each bar's return once (a return at or before the latest kept time is
    known)."""
    r = np.arange(1.0, 11.0) / 1000  # bars 1..10
    eng = WorldEngine(parse_policy("{}"))
    eng.ingest(upd("a", seq=4, n_bars=4, returns=r[:4].tolist()))
    eng.ingest(upd("a", seq=6, n_bars=6, returns=r[4:6].tolist()))
    # restarted after bar 4: its next update covers bars 5..8 (5 and 6 already streamed)
    eng.ingest(upd("a", seq=8, n_bars=8, returns=r[4:8].tolist()))
    eng.ingest(upd("a", seq=10, n_bars=10, returns=r[8:10].tolist()))
    assert list(eng.strategies["a"].returns) == r.tolist()
    assert list(eng.strategies["a"].ts) == list(range(1, 11))
    # another run of the same strategy over bars the world has: its metrics count, its
    # returns are known already
    eng.ingest(upd("a", seq=2, n_bars=2, run="r2", returns=[0.5, 0.5]))
    assert list(eng.strategies["a"].returns) == r.tolist()
    back = WorldEngine.from_state(eng.to_state())
    assert back.strategies["a"].run_bars == {"r1": 10, "r2": 2}
