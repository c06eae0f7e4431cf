"""Snapshots cost nothing where nobody keeps them: Bytewax takes them at every epoch's close
with or without recovery, a replay flow hands over None instead of copying its state, and a
flow that keeps snapshots still copies (and resumes from) the whole state."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

import dataflows.recovery as recovery_module
from connectors.data.synthetic import generate_bars
from dataflows.compiler import (
    StrategySpec,
    _evaluate_step,
    _EvaluateLogic,
    build_flow,
    build_program,
)
from dataflows.control import RunControl
from qmtl import cs
from qmtl.core.expr import col

SYMS = ["A", "B", "C"]
SPECS = [
    StrategySpec("plain", SYMS, col("close").sma(3) > col("close").sma(8), 2.0, 1.0, 252.0),
    StrategySpec("panel", SYMS, cs.scale(cs.demean(cs.rank(col("close").pct_change(3)))),
                 2.0, 1.0, 252.0),
]


def items(n: int = 60, size: int = 5):
    data = {s: generate_bars(n, seed=i) for i, s in enumerate(SYMS)}
    out = [(s, {k: v[a:a + size] for k, v in data[s].items()})
           for s in SYMS for a in range(0, n, size)]
    return sorted(out, key=lambda it: (int(it[1]["ts"][0]), it[0]))


class _Pickles:
    """A snapshot value that counts how often Bytewax pickles it."""

    count = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __reduce__(self):
        _Pickles.count += 1
        return (_Pickles, (self.n,))


@pytest.mark.parametrize("recovery", [False, True])
def test_bytewax_snapshots_every_epoch_and_pickles_only_with_recovery(tmp_path, recovery):
    """What the shortcut rests on (Bytewax 0.21): ``snapshot()`` is called at each epoch's
    close for each key the epoch touched, recovery or not; only with recovery is it kept."""
    calls: list[int] = []

    class Count(op.StatefulLogic):
        def __init__(self, resume):
            self.n = 0 if resume is None else resume.n

        def on_item(self, value):
            self.n += 1
            return [self.n], self.RETAIN

        def snapshot(self):
            calls.append(self.n)
            return _Pickles(self.n)

    flow = Dataflow("probe")
    s = op.input("in", flow, TestingSource([(f"k{i % 3}", i) for i in range(30)], batch_size=1))
    op.output("out", op.stateful("count", s, Count), TestingSink([]))
    kw = {}
    if recovery:
        init_db_dir(tmp_path, 1)
        kw["recovery_config"] = RecoveryConfig(tmp_path)
    _Pickles.count = 0
    run_main(flow, epoch_interval=dt.timedelta(0), **kw)
    assert len(calls) >= 30  # one per key and epoch: each item closes an epoch here
    assert (_Pickles.count > 0) is recovery


class _CountingCopy:
    """Stands in for the ``copy`` module of dataflows.recovery: counts deep copies."""

    def __init__(self) -> None:
        import copy

        self.calls = 0
        self._deepcopy = copy.deepcopy

    def deepcopy(self, value):
        self.calls += 1
        return self._deepcopy(value)


def replay(recovery: bool, monkeypatch) -> tuple[list, int]:
    spy = _CountingCopy()
    monkeypatch.setattr(recovery_module, "copy", spy)
    outs: list = []
    control = RunControl()
    its = items()
    flow = build_flow(SPECS, lambda: iter(its), outs.append, control, recovery=recovery)
    run_main(flow, epoch_interval=dt.timedelta(0))  # an epoch per batch: many snapshots
    assert control.error is None
    return outs, spy.calls


def test_a_replay_copies_no_state_and_gives_what_a_recovering_flow_gives(monkeypatch):
    plain, copies = replay(False, monkeypatch)
    kept, kept_copies = replay(True, monkeypatch)
    assert copies == 0
    assert kept_copies > len(items())  # every step, every epoch
    for key in ("plain", "panel"):
        a = np.concatenate([o.batch.returns for o in plain if o.strategy == key and o.batch])
        b = np.concatenate([o.batch.returns for o in kept if o.strategy == key and o.batch])
        assert len(a) == 60 and np.array_equal(a, b)
        assert np.abs(a).max() > 0  # it traded
    assert [o.metrics for o in plain if o.metrics] == [o.metrics for o in kept if o.metrics]


def test_the_evaluate_step_resumes_exactly_from_its_snapshot():
    """The per-symbol step (its own logic now, with stateful_flat_map's snapshot): cut
    anywhere, pickle the snapshot, resume, and the weights are the uninterrupted run's."""
    plain = [SPECS[0]]
    its = [it for it in items(size=4) if it[0] == "B"]

    def logic(resume=None, recovery=True):
        step = _evaluate_step(plain, build_program(plain), RunControl(), "raise")
        return _EvaluateLogic(step, recovery, resume)

    def weights(outs):
        return [w for _k, b in outs for w in b.weight.tolist()]

    whole = logic()
    want = weights([o for it in its for o in whole.on_item(it)[0]])
    assert len(want) == 60 and len(set(want)) == 2
    assert logic(recovery=False).snapshot() is None
    for cut in (1, 7, len(its) - 1):
        first = logic()
        got = weights([o for it in its[:cut] for o in first.on_item(it)[0]])
        snap = pickle.loads(pickle.dumps(first.snapshot()))
        second = logic(resume=snap)
        got += weights([o for it in its[cut:] for o in second.on_item(it)[0]])
        assert got == want


def test_a_recovering_flow_resumes_where_its_snapshot_left_off(tmp_path: Path):
    """build_flow(recovery=True) under a Bytewax recovery config: a run stopped after some
    batches and resumed from its folder emits the rows an uninterrupted run emits."""
    its = items()
    cut = len(its) // 2

    def run(upto: int, rec: RecoveryConfig | None) -> list:
        outs: list = []
        control = RunControl()
        source = its[:upto]
        flow = build_flow([SPECS[1]], lambda: iter(source), outs.append, control,
                          recovery=True, metrics_every=10**9)
        run_main(flow, epoch_interval=dt.timedelta(0), recovery_config=rec)
        assert control.error is None
        return [(o.strategy, o.batch.ts.tolist(), o.batch.returns.tolist())
                for o in outs if o.batch is not None]

    want = run(len(its), None)
    init_db_dir(tmp_path, 1)
    first = run(cut, RecoveryConfig(tmp_path))
    second = run(len(its), RecoveryConfig(tmp_path))
    ts = [t for _s, batch, _r in first + second for t in batch]
    assert len(ts) == len(set(ts))  # no bar twice
    flat = lambda rows: [(t, r) for _s, b, rs in rows for t, r in zip(b, rs, strict=True)]  # noqa: E731
    assert flat(first + second) == flat(want)
