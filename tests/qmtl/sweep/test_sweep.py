"""A sweep's variants equal runs of each variant alone, for any number of workers and
processes; shared nodes are computed once; train/test and walk-forward are what the
variants' own returns say."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from dataflows.compiler import build_program
from qmtl import backtest, sweep, sweep_many
from qmtl.core.expr_nodes import walk
from qmtl.core.times import parse_time
from qmtl.loader import load_strategy
from qmtl.runner import make_strategy, to_spec
from qmtl.strategy import StrategyCodeError
from qmtl.sweep import GridError, SweepError
from qmtl.sweep.result import period_metrics

HERE = Path(__file__).parent
SmaCross = load_strategy(f"{HERE / 'strategies.py'}:SmaCross")
RsiSwing = load_strategy(f"{HERE / 'strategies.py'}:RsiSwing")
GRID = {"fast": "5:15:5", "slow": "20,40"}


@pytest.fixture(scope="module")
def bars() -> dict:
    return {"AAA": generate_bars(1500, seed=1), "BBB": generate_bars(1500, seed=2)}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, bars: dict) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    cat = Catalog(root)
    for sym, b in bars.items():
        cat.write(sym, "1d", b)
    return root


def same_metrics(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        assert (math.isnan(g) and math.isnan(w)) or abs(g - w) <= 1e-12, (k, g, w)


def test_each_variant_equals_its_own_run(bars: dict) -> None:
    res = sweep(SmaCross, GRID, bars, batch_size=333)
    assert res.table.num_rows == 6
    for i, params in enumerate(res.params):
        alone = backtest(SmaCross, bars, **params)
        assert np.array_equal(res.runs[i].returns, alone.returns)
        assert np.array_equal(res.runs[i].ts, alone.ts)
        same_metrics(res.runs[i].metrics, alone.metrics)
        row = res.table.slice(i, 1).to_pylist()[0]
        assert (row["fast"], row["slow"]) == (params["fast"], params["slow"])
        assert row["sharpe"] == res.runs[i].metrics["sharpe"]


def test_with_start_every_variant_warms_up_on_the_largest_lookback(bars: dict) -> None:
    start = "2017-01-02"
    res = sweep(SmaCross, GRID, bars, start=start, end="2019-06-30")
    warmup = 39  # SMA(40): the grid's largest look-back
    for i, params in enumerate(res.params):
        alone = backtest(SmaCross, bars, start=start, end="2019-06-30", warmup=warmup,
                         **params)
        assert alone.ts[0] >= parse_time(start)
        assert np.array_equal(res.runs[i].returns, alone.returns)
        same_metrics(res.runs[i].metrics, alone.metrics)


def test_shared_nodes_are_computed_once(bars: dict) -> None:
    res = sweep(SmaCross, GRID, bars)
    specs = [to_spec(make_strategy(SmaCross, p), ["AAA", "BBB"], None) for p in res.params]
    distinct = {n.id for n in walk([s.weight for s in specs])}
    assert res.stats.nodes_evaluated == len(distinct)  # col, 3 fast + 2 slow SMAs, 6 gt
    assert len(distinct) == 1 + 3 + 2 + 6
    assert res.stats.nodes_per_variant == sum(len(build_program([s]).nodes) for s in specs)
    assert res.stats.dedup == pytest.approx(24 / 12)
    # kernel updates: every non-column node once per symbol batch, not once per variant
    assert res.stats.kernel_calls == (len(distinct) - 1) * 2


@pytest.mark.parametrize("how", [{"workers": 2}, {"workers": 3, "batch_size": 77},
                                 {"processes": 2}])
def test_any_split_across_workers_and_processes_gives_the_same_results(
        catalog: Path, bars: dict, how: dict) -> None:
    one = sweep(SmaCross, GRID, catalog)
    other = sweep(SmaCross, GRID, catalog, **how)
    assert other.stats.shards == [2, 2, 2] if how.get("workers") == 3 else [3, 3]
    for a, b in zip(one.runs, other.runs, strict=True):
        assert a.key == b.key
        assert np.array_equal(a.returns, b.returns)
        same_metrics(b.metrics, a.metrics)  # bits, or 1e-12 for another batch size
    if "batch_size" not in how:
        assert one.table.equals(other.table)


def test_processes_report_the_strategy_error_of_a_child(catalog: Path) -> None:
    with pytest.raises(SweepError, match="unknown symbol 'ZZZ' at interval 1d"):
        sweep(SmaCross, {"fast": "5,10"}, catalog, symbols=["ZZZ"], processes=2)


def test_many_strategies_in_one_flow_equal_their_own_runs(bars: dict) -> None:
    res = sweep_many([SmaCross, RsiSwing(n=10), SmaCross(fast=3, slow=8)], bars)
    assert res.table.column("strategy").to_pylist() == ["SmaCross", "RsiSwing", "SmaCross"]
    for i, s in enumerate([SmaCross(), RsiSwing(n=10), SmaCross(fast=3, slow=8)]):
        alone = backtest(s, bars)
        assert np.array_equal(res.runs[i].returns, alone.returns)
        same_metrics(res.runs[i].metrics, alone.metrics)


def test_train_and_test_metrics_come_from_each_side_of_the_cut(bars: dict) -> None:
    cut = "2018-12-31"
    res = sweep(SmaCross, GRID, bars, train_end=cut, metric="total_return")
    ts = res.runs[0].ts
    keep = ts <= parse_time(cut)
    for i in range(len(res.runs)):
        r = backtest(SmaCross, bars, **res.params[i]).returns
        train, test = r[keep], r[~keep]
        row = res.table.slice(i, 1).to_pylist()[0]
        assert row["train_total_return"] == pytest.approx(np.prod(1 + train) - 1, rel=1e-12)
        assert row["test_total_return"] == pytest.approx(np.prod(1 + test) - 1, rel=1e-12)
        assert row["test_n_bars"] == len(test)
    assert res.rank_by == "train_total_return"
    ranked = res.best(6).column("train_total_return").to_pylist()
    assert ranked == sorted(ranked, reverse=True)


def test_walk_forward_reselects_on_each_fold(bars: dict) -> None:
    res = sweep(SmaCross, GRID, bars, walk_forward=3, metric="sharpe")
    ts, m = res.matrix()
    t = len(ts)
    edges = [t * i // 4 for i in range(5)]
    stitched = []
    for fold, i in zip(res.walk_forward.folds, range(1, 4), strict=True):
        sharpes = [period_metrics(m[: edges[i], j], res.periods_per_year)["sharpe"]
                   for j in range(m.shape[1])]
        best = int(np.nanargmax(sharpes))
        assert fold.chosen == res.runs[best].key
        stitched.append(m[edges[i]:edges[i + 1], best])
    assert np.array_equal(res.walk_forward.returns, np.concatenate(stitched))


def test_deflated_sharpe_and_pbo_of_the_sweep(bars: dict) -> None:
    res = sweep(SmaCross, GRID, bars, pbo=True, pbo_splits=6)
    d = res.deflated
    assert d is not None and d.n_trials == 6 and 0.0 <= d.dsr <= 1.0
    best = res.returns(res.best(1).column("variant")[0].as_py())
    assert d.sharpe == pytest.approx(best.mean() / best.std(ddof=1), rel=1e-12)
    assert res.pbo is not None and res.pbo.n_splits == math.comb(6, 3)


def test_bad_options_fail_before_running(bars: dict) -> None:
    with pytest.raises(GridError, match="did you mean 'fast'"):
        sweep(SmaCross, {"fsat": "1,2"}, bars)
    with pytest.raises(SweepError, match="unknown metric 'sharp'"):
        sweep(SmaCross, GRID, bars, metric="sharp")
    with pytest.raises(SweepError, match="share one interval"):
        sweep_many([SmaCross, type("H", (SmaCross,), {"interval": "1h"})], bars)
    with pytest.raises(SweepError, match="--walk-forward must be >= 1"):
        sweep(SmaCross, GRID, bars, walk_forward=0)


def test_the_summary_names_the_data_as_a_run_does(catalog: Path) -> None:
    res = sweep(SmaCross, GRID, catalog)
    alone = backtest(SmaCross, catalog, fast=5, slow=20)
    assert res.summary()["data"]["fingerprint"] == alone.data["fingerprint"]
    two = sweep(SmaCross, GRID, catalog, processes=2)
    assert two.summary()["data"]["fingerprint"] == alone.data["fingerprint"]


def test_an_error_in_the_users_code_names_its_line(bars: dict) -> None:
    class Bad(SmaCross):
        def signal(self, bars):
            return bars.close.rolling(self.fast).apply(lambda w: 1 / 0)

    with pytest.raises(StrategyCodeError, match=r"Bad failed during the sweep at .*"
                       r"test_sweep.py:\d+.*ZeroDivisionError"):
        sweep(Bad, {"fast": "3,4"}, bars)


@pytest.mark.parametrize("case", ["gaps", "one bar per batch"])
def test_variants_equal_their_runs_when_bars_are_not_aligned_or_come_one_by_one(
        bars: dict, case: str) -> None:
    """Each run's bits when a symbol lacks bars for a while (the portfolio fills its
    timeline) and when the replay hands over one bar per batch."""
    if case == "gaps":
        keep = np.ones(1500, bool)
        keep[700:760] = False  # BBB has no bars for a while, mid-run
        data = {"AAA": bars["AAA"], "BBB": {k: v[keep] for k, v in bars["BBB"].items()}}
        options: dict = {"batch_size": 250}
    else:
        data = {s: {k: v[:120] for k, v in b.items()} for s, b in bars.items()}
        options = {"batch_size": 1}
    res = sweep(SmaCross, {"fast": "3,5", "slow": "10,20"}, data, **options)
    for i, params in enumerate(res.params):
        alone = backtest(SmaCross, data, **params)
        assert np.array_equal(res.runs[i].returns, alone.returns), (case, params)
        same_metrics(res.runs[i].metrics, alone.metrics)
