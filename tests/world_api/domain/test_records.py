"""A track record per stage (issue 24 §1): an update adds to its own stage's record and never
replaces another's; gates read the record the policy says; only paper and live returns are
realized; records survive a snapshot and a state stored before them."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as hs

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.domain.strategy_state import StrategyState

RNG = np.random.default_rng(7)


def upd(sid, seq, mode, n_bars, returns, run="r", **metrics):
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id=run,
        seq=seq,
        mode=mode,
        as_of=n_bars,
        n_bars=n_bars,
        metrics=metrics,
        returns=returns,
    )


def backtest_in_chunks(eng, sid, n, chunk=500, start=0, run="bt", **metrics):
    """A backtest of ``n`` bars posted as ``qmtl submit`` does: chunks of returns, each
    update with the bars so far (bar i's close time is ``start + i``)."""
    r = RNG.normal(0.001, 0.01, n)
    changes = []
    for seq, lo in enumerate(range(0, n, chunk), start=1):
        hi = min(n, lo + chunk)
        pairs = [(start + i, float(r[i])) for i in range(lo, hi)]
        changes += eng.ingest(upd(sid, seq, "backtest", hi, pairs, run=run, **metrics))
    return r, changes


def test_a_live_start_does_not_deactivate_what_its_backtest_activated():
    """The reproduction of issue 24: min_bars 300, a 2,000-bar backtest activates the
    strategy; the paper run's first update (1 bar, a bad early Sharpe) must not deactivate
    it, and it stays active while its paper record grows; the backtest record is kept."""
    eng = WorldEngine(parse_policy("min_bars: 300\ngates: {sharpe: '>= 0.5'}"))
    _, changes = backtest_in_chunks(eng, "s", 2_000, sharpe=1.2)
    assert [(c.active, c.weight) for c in changes] == [(True, 1.0)]
    for n in range(1, 300):
        out = eng.ingest(upd("s", n, "paper", n, [(10_000 + n, 0.001)], run="live1", sharpe=-3.0))
        assert out == [], f"paper bar {n}: {out}"
        assert eng.view("s").active
    s = eng.strategies["s"]
    assert s.records["paper"].n_bars == 299
    assert s.records["backtest"].n_bars == 2_000
    assert s.records["backtest"].metrics == {"sharpe": 1.2}
    assert s.record_stage == "backtest" and eng.view("s").n_bars == 2_000
    # at min_bars the paper record is the one the gates read: its Sharpe decides now
    out = eng.ingest(upd("s", 300, "paper", 300, [(10_300, 0.001)], run="live1", sharpe=-3.0))
    assert [(c.active, c.reason) for c in out] == [(False, "deactivated: sharpe -3 < gate 0.5")]
    assert s.record_stage == "paper" and s.records["backtest"].n_bars == 2_000


def test_the_policy_names_the_record_its_gates_read():
    eng = WorldEngine(parse_policy("record: backtest\ngates: {sharpe: '>= 0.5'}"))
    backtest_in_chunks(eng, "s", 600, sharpe=1.0)
    eng.ingest(upd("s", 1, "paper", 900, [(5_000, 0.0)], run="p", sharpe=-1.0))
    assert eng.view("s").active and eng.view("s").n_bars == 600
    eng.set_policy(parse_policy("record: paper\ngates: {sharpe: '>= 0.5'}"), 2)
    view = eng.view("s")
    assert not view.active and view.n_bars == 900
    assert view.hints == ["sharpe -1 < gate 0.5"]


def test_a_backtest_in_chunks_realizes_nothing_and_paper_returns_do():
    """Issue 24: one 3,000-bar backtest posted in chunks gave 2,000 'realized' points."""
    eng = WorldEngine(parse_policy("top_k: 1"))
    backtest_in_chunks(eng, "s", 3_000, sharpe=1.0)
    assert eng.view("s").active
    assert len(eng.realized) == 0
    assert eng.world_metrics()["realized"]["n_bars"] == 0
    assert eng.world_metrics()["pro_forma"]["n_bars"] == 2_000  # the ring of the backtest
    # shadow returns are not realized either; paper and live are, at the weight held
    eng.ingest(upd("s", 1, "shadow", 1, [(3_100, 0.5)], run="sh", sharpe=1.0))
    eng.ingest(upd("s", 1, "paper", 2, [(3_001, 0.02), (3_002, -0.01)], run="p", sharpe=1.0))
    eng.ingest(upd("s", 1, "live", 1, [(3_003, 0.03)], run="l", sharpe=1.0))
    assert eng.realized.points() == ([3_001, 3_002, 3_003], [0.02, -0.01, 0.03])
    # a restarted paper run re-sends a stretch: counted once
    eng.ingest(upd("s", 1, "paper", 3, [(3_002, -0.01), (3_004, 0.01)], run="p2", sharpe=1.0))
    assert eng.realized.points() == ([3_001, 3_002, 3_003, 3_004], [0.02, -0.01, 0.03, 0.01])


@settings(max_examples=40, deadline=None)
@given(
    hs.lists(
        hs.tuples(
            hs.sampled_from(["backtest", "shadow", "paper", "live"]),
            hs.sampled_from(["r1", "r2"]),
            hs.integers(0, 500),
            hs.floats(-2, 3),
        ),
        max_size=25,
    )
)
def test_an_update_only_changes_its_own_stage_record(steps):
    """Invariant: each record equals what its own stage's updates alone make (bars: the
    latest backtest run's; a forward stage's summed over runs; metrics: the latest)."""
    eng = WorldEngine(parse_policy("min_bars: 100"))
    seqs: dict[tuple[str, str], int] = {}
    expect: dict[str, tuple[dict[str, int], str, float]] = {}
    for mode, run, bars, sharpe in steps:
        run_id = f"{mode}-{run}"
        seq = seqs[(mode, run)] = seqs.get((mode, run), 0) + 1
        eng.ingest(upd("s", seq, mode, bars, [], run=run_id, sharpe=sharpe))
        runs, _, _ = expect.get(mode, ({}, "", 0.0))
        runs = {**runs, run_id: max(bars, runs.get(run_id, 0))}
        expect[mode] = (runs, run_id, sharpe)
    if not steps:
        return
    recs = eng.strategies["s"].records
    assert set(recs) == set(expect)
    for mode, (runs, last, sharpe) in expect.items():
        want = runs[last] if mode == "backtest" else sum(runs.values())
        assert recs[mode].n_bars == want and recs[mode].metrics == {"sharpe": sharpe}


def test_records_survive_a_snapshot():
    eng = WorldEngine(parse_policy("min_bars: 300\nmax_silence: 120"))
    eng.clock = lambda: 42 * 10**9
    backtest_in_chunks(eng, "s", 700, sharpe=1.0)
    eng.ingest(upd("s", 1, "paper", 5, [(800, 0.01), (801, 0.02)], run="p", sharpe=0.3))
    back = WorldEngine.from_state(json.loads(json.dumps(eng.to_state())))
    a, b = eng.strategies["s"], back.strategies["s"]
    for stage in ("backtest", "paper"):
        ra, rb = a.records[stage], b.records[stage]
        assert (rb.runs, rb.metrics, list(rb.ts), list(rb.returns), rb.last_seen, rb.total) == (
            ra.runs,
            ra.metrics,
            list(ra.ts),
            list(ra.returns),
            ra.last_seen,
            ra.total,
        )
    assert b.realized_ts == 801 and back.view("s") == eng.view("s")
    assert back.realized.points() == eng.realized.points()


def test_a_state_stored_before_records_gets_them():
    """A strategy state as the store held it before records (issue 24): its stage records
    (migration 0006) become its records, with no returns; nothing is realized twice."""
    old = {
        "sid": "s",
        "metrics": {"sharpe": -1.0},
        "n_bars": 1,
        "seqs": {"bt": 4, "p": 1},
        "run_bars": {"bt": 2000, "p": 1},
        "returns_b64": "",
        "ts_b64": "",
        "total_returns": 0,
        "active": True,
        "weight": 1.0,
        "changed_clock": 3,
        "stage": {
            "stage": "paper",
            "pending": False,
            "records": {
                "backtest": {"runs": {"bt": 2000}, "metrics": {"sharpe": 1.5}},
                "paper": {"runs": {"p": 1}, "metrics": {"sharpe": -1.0}},
            },
        },
    }
    s = StrategyState.from_dict(old)
    assert s.records["backtest"].n_bars == 2000 and s.records["paper"].n_bars == 1
    assert s.records["backtest"].metrics == {"sharpe": 1.5}
    # before stages: the latest metrics and bars become the backtest record
    older = {k: v for k, v in old.items() if k != "stage"}
    t = StrategyState.from_dict(older)
    assert set(t.records) == {"backtest"} and t.records["backtest"].n_bars == 1
    eng = WorldEngine.from_state(
        {
            "policy": parse_policy("min_bars: 300").model_dump(),
            "policy_version": 1,
            "strategies": {"s": old},
        }
    )
    assert eng.view("s").active and eng.view("s").n_bars == 2000
