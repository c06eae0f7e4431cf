"""The cross-sectional step in the flow: its recovery snapshot resumes a run without changing
it, two workers give what one gives, a strategy started at `start` warms up on the look-back,
and cross-sectional and per-symbol strategies run side by side in one flow."""

from __future__ import annotations

import pickle

import numpy as np

from connectors.data.synthetic import generate_bars
from dataflows.compiler import StrategySpec, run_dataflow
from dataflows.control import RunControl
from dataflows.panel_flow import PanelLogic, panel_groups
from qmtl import Strategy, backtest, cs
from qmtl.core.expr import col

SYMS = ["A", "B", "C", "D"]


def data(n: int = 90, seed: int = 1):
    rng = np.random.default_rng(seed)
    out = {}
    for i, s in enumerate([*SYMS, "SPY"]):
        b = generate_bars(n, interval="1h", seed=seed * 5 + i)
        keep = rng.random(n) > 0.2
        out[s] = {k: v[keep] for k, v in b.items()}
    return out


WEIGHT = cs.zscore(col("close").pct_change(3)).ema(3) * (
    col("close", symbol="SPY") > col("close", symbol="SPY").sma(5)) + cs.top(
    col("close", interval="4h") / col("close"), 2)


def items(d, size: int):
    out = []
    for s in sorted(d):
        for a in range(0, len(d[s]["ts"]), size):
            out.append((s, {k: v[a:a + size] for k, v in d[s].items()}))
    # time order of each batch's first bar, symbols interleaved
    return sorted(out, key=lambda it: (int(it[1]["ts"][0]), it[0]))


def logic(resume=None):
    spec = StrategySpec("x", SYMS, WEIGHT, 0.0, 1.0, 252.0, context=("SPY",), interval="1h")
    groups = {g.key: g for g in panel_groups([spec])}
    return PanelLogic(groups, RunControl(), "raise", False, None, {}, resume), next(iter(groups))


def emitted(outs):
    return [(k, b.symbol, b.ts.tolist(), b.weight.tolist()) for k, b in outs]


def test_a_snapshot_resumes_the_step_exactly():
    its = items(data(), 7)
    whole, key = logic()
    want = []
    for sym, b in its:
        want += emitted(whole.on_item((key, sym, b))[0])
    want += emitted(whole.on_eof()[0])
    assert len(want) > 20 and not whole.control.failed
    for cut in (5, len(its) // 2, len(its) - 3):
        first, _ = logic()
        got = []
        for sym, b in its[:cut]:
            got += emitted(first.on_item((key, sym, b))[0])
        snap = pickle.loads(pickle.dumps(first.snapshot()))  # what Bytewax stores
        second, _ = logic(resume=snap)
        for sym, b in its[cut:]:
            got += emitted(second.on_item((key, sym, b))[0])
        got += emitted(second.on_eof()[0])
        assert got == want


def test_two_workers_give_what_one_gives():
    d = data(120, 2)
    spec = StrategySpec("x", SYMS, WEIGHT, 3.0, 1.0, 252.0, context=("SPY",), interval="1h")
    plain = StrategySpec("p", SYMS, col("close").sma(3) > col("close").sma(8), 3.0, 1.0, 252.0)

    def run(workers):
        outs = run_dataflow([spec, plain], lambda: iter(items(d, 11)), workers=workers)
        return {k: np.concatenate([o.batch.returns for o in outs if o.batch and o.strategy == k])
                for k in ("x", "p")}

    one, two = run(1), run(2)
    for k in one:
        assert np.array_equal(one[k], two[k]), k
    # the per-symbol strategy beside the cross-sectional one is what it is alone
    alone = run_dataflow([plain], lambda: iter(items(d, 11)))
    assert np.array_equal(one["p"], np.concatenate([o.batch.returns for o in alone if o.batch]))


def test_an_interval_finer_than_the_strategys_is_refused():
    import pytest

    spec = StrategySpec("x", SYMS, col("close", interval="1h"), 0.0, 1.0, 252.0,
                        interval="1d")
    with pytest.raises(ValueError, match=r"bars.at\('1h'\): 1h is not a coarser whole"):
        panel_groups([spec])


def test_start_warms_the_cross_section_up_on_the_look_back():
    d = {s: generate_bars(200, seed=i) for i, s in enumerate(SYMS)}

    class Mom(Strategy):
        symbols = SYMS

        def signal(self, bars):
            return cs.scale(cs.demean(cs.rank(bars.close.pct_change(10))))

    full = backtest(Mom, d)
    start = int(d["A"]["ts"][100])
    late = backtest(Mom, d, start=start)
    assert late.ts[0] == start and late.settings["warmup"] == 10
    wf = full.bars.to_pandas().set_index(["ts", "symbol"])["weight"]
    wl = late.bars.to_pandas().set_index(["ts", "symbol"])["weight"]
    np.testing.assert_array_equal(wl.to_numpy(), wf.loc[wl.index].to_numpy())


def test_strategies_with_other_universes_in_one_flow_equal_each_alone():
    d = data(80, 3)
    mom = cs.rank(col("close").pct_change(2)) - 0.5
    a = StrategySpec("a", ["A", "B", "C"], mom, 1.0, 1.0, 252.0)
    b = StrategySpec("b", ["B", "C", "D"], mom, 1.0, 1.0, 252.0)
    control = RunControl()
    both = run_dataflow([a, b], lambda: iter(items(d, 9)), control=control)
    assert sorted(control.seen) == SYMS  # each symbol fingerprinted once (SPY is not read)
    for spec in (a, b):
        alone = run_dataflow([spec], lambda: iter(items(d, 9)))
        got = np.concatenate([o.batch.returns for o in both if o.batch and o.strategy == spec.key])
        want = np.concatenate([o.batch.returns for o in alone if o.batch])
        assert np.array_equal(got, want), spec.key
