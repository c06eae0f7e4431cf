"""``qmtl.sweep`` and ``qmtl.sweep_many``: many variants of a strategy (or many strategies)
in one Bytewax flow, ranked, with the statistics that say how much of the best is luck.

>>> from qmtl import Strategy
>>> from connectors.data.synthetic import generate_bars
>>> class SmaCross(Strategy):
...     symbols = ["AAPL"]
...     fast: int = 10
...     slow: int = 50
...     def signal(self, bars):
...         return bars.close.sma(self.fast) > bars.close.sma(self.slow)
>>> res = sweep(SmaCross, {"fast": "5:15:5", "slow": [30, 60]},
...             data={"AAPL": generate_bars(400, seed=3)})
>>> res.table.num_rows, res.stats.nodes_evaluated < res.stats.nodes_per_variant
(6, True)
>>> res.best(1).column("variant").to_pylist()[0] in res.table.column("variant").to_pylist()
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from connectors.data.seamless import SeamlessDataProvider
from dataflows.compiler import OnBad
from dataflows.metrics import MetricSet
from qmtl.core.bars import Batch
from qmtl.result import ParamValue
from qmtl.runner import make_strategy
from qmtl.sources import DataSource, as_provider
from qmtl.strategy import Strategy
from qmtl.sweep import stats as overfit
from qmtl.sweep.cluster import run_processes
from qmtl.sweep.grid import GridSpec, expand
from qmtl.sweep.plan import ns, plan_variants, run_plan
from qmtl.sweep.result import SweepError, SweepResult, order, walk_forward


def analyse(
    result: SweepResult, *, walk_forward_folds: int | None, pbo: bool, pbo_splits: int,
) -> SweepResult:
    """Add the deflated Sharpe of the best variant, and on request walk-forward and PBO.

    The DSR's trials are every variant, their Sharpe ratios taken on the ranking period
    (the training period with a cut); the best variant's returns on that period too.
    """
    part = "train" if result.train_end is not None else "all"
    picks = [r.returns if part == "all" else r.returns[r.ts <= result.train_end]
             for r in result.runs]
    best = int(result.ranking()[0])
    if len(result.runs) > 1 and len(picks[best]) > 2:
        srs = np.array([float(overfit.sharpe(r)) if len(r) > 1 else math.nan for r in picks])
        if np.isfinite(srs).any():
            result.deflated = overfit.deflated_sharpe(picks[best], srs)
    if walk_forward_folds is not None:
        ts, m = result.matrix()
        result.walk_forward = walk_forward([r.key for r in result.runs], ts, m,
                                           walk_forward_folds, result.metric,
                                           result.periods_per_year)
    if pbo:
        _, m = result.matrix()
        try:
            result.pbo = overfit.pbo(m, pbo_splits)
        except ValueError as exc:
            raise SweepError(str(exc)) from None
    return result


def sweep_variants(
    strategies: Sequence[Strategy],
    params: list[dict[str, ParamValue]],
    data: DataSource = None,
    *,
    symbols: Sequence[str] | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    cost_bps: float | None = None,
    metric: str = "sharpe",
    batch_size: int = 10_000,
    workers: int = 1,
    processes: int = 1,
    addresses: Sequence[str] | None = None,
    process_id: int = 0,
    train_end: str | int | None = None,
    walk_forward: int | None = None,
    pbo: bool = False,
    pbo_splits: int = 16,
    periods_per_year: float | None = None,
    on_bad_bars: OnBad = "raise",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    metrics_every: int = 1_000,
) -> SweepResult | None:
    """Run strategy instances as the variants of one sweep (see :func:`sweep`)."""
    if workers < 1 or processes < 1:
        raise SweepError(f"workers and processes must be >= 1, got {workers} and {processes}")
    known = list(MetricSet(252.0).get())
    if metric not in known:
        raise SweepError(f"unknown metric {metric!r}: use one of {', '.join(known)}")
    if walk_forward is not None and walk_forward < 1:
        raise SweepError(f"--walk-forward must be >= 1, got {walk_forward}")
    if pbo and (pbo_splits < 2 or pbo_splits % 2):
        raise SweepError(f"--pbo-splits must be an even number >= 2, got {pbo_splits}")
    plan = plan_variants(strategies, params, symbols, start, end, cost_bps, batch_size,
                         periods_per_year, on_bad_bars, metrics_every)
    cut = ns(train_end, "train_end")
    source: SeamlessDataProvider | Mapping[str, Batch] = (
        data if isinstance(data, Mapping) else as_provider(data))
    t0 = time.perf_counter()
    if processes > 1:
        runs, stats = run_processes(plan, source, processes, workers, on_start, progress)
    else:
        runs, stats = run_plan(plan, source, workers=workers, progress=progress,
                               on_start=on_start, addresses=list(addresses or []) or None,
                               process_id=process_id)
    if runs is None:
        return None
    ppy = plan.specs()[0].periods_per_year
    result = SweepResult([s.name for s in plan.strategies], plan.params, runs, metric, stats,
                         train_end=cut, periods_per_year=ppy,
                         seconds=time.perf_counter() - t0,
                         settings={"symbols": plan.universe, "interval": plan.interval,
                                   "start": plan.start, "end": plan.end, "workers": workers,
                                   "processes": processes, "batch_size": batch_size})
    return analyse(result, walk_forward_folds=walk_forward, pbo=pbo, pbo_splits=pbo_splits)


def sweep(
    strategy: type[Strategy],
    grid: GridSpec | None = None,
    data: DataSource = None,
    *,
    where: str | None = None,
    random: int | None = None,
    seed: int = 0,
    **options: Any,
) -> SweepResult:
    """Run every variant of ``grid`` (parameter -> values: ``"a:b:step"``, ``"a,b,c"`` or
    an iterable) that passes ``where``, or ``random`` of them drawn with ``seed``, in one
    Bytewax flow over ``data`` (as for :func:`qmtl.backtest`), and rank them by ``metric``.

    Options: ``symbols``, ``start``, ``end``, ``cost_bps``, ``periods_per_year``,
    ``on_bad_bars``, ``batch_size`` as for :func:`qmtl.backtest`; ``metric`` (default
    ``sharpe``); ``train_end`` ranks on the bars up to it and shows ``test_*`` metrics after
    it; ``walk_forward=N`` re-selects on N anchored folds; ``pbo=True`` (``pbo_splits``)
    adds the probability of backtest overfitting; ``workers`` and ``processes`` split the
    variants across Bytewax workers and processes; ``addresses`` and ``process_id`` make
    this process one member of a cluster started by hand (several hosts), and then the
    result is None on every process but the one that gathered it; ``progress``/``on_start``
    report bar x variant steps.
    """
    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise SweepError(f"expected a Strategy subclass, got {strategy!r}")
    variants = expand(strategy, grid or {}, where=where, random=random, seed=seed)
    result = sweep_variants([make_strategy(strategy, v) for v in variants], variants, data,
                            **options)
    assert result is not None or options.get("addresses")
    return result  # type: ignore[return-value]


def sweep_many(
    strategies: Sequence[type[Strategy] | Strategy], data: DataSource = None, **options: Any
) -> SweepResult:
    """Run several different strategies (classes or instances; one interval) together in one
    flow, as the variants of one sweep: each is one row, ranked like a grid's variants.

    >>> from qmtl import Strategy
    >>> from connectors.data.synthetic import generate_bars
    >>> class Long(Strategy):
    ...     symbols = ["A"]
    ...     def signal(self, bars):
    ...         return 1.0
    >>> class Flat(Long):
    ...     def signal(self, bars):
    ...         return 0.0
    >>> res = sweep_many([Long, Flat], data={"A": generate_bars(300, seed=4)},
    ...                  metric="total_return")
    >>> res.table.column("strategy").to_pylist()
    ['Long', 'Flat']
    """
    instances = [make_strategy(s, {}) for s in strategies]
    params = [{k: getattr(s, k) for k in type(s).parameters()} for s in instances]
    result = sweep_variants(instances, params, data, **options)
    assert result is not None or options.get("addresses")
    return result  # type: ignore[return-value]


__all__ = ["SweepResult", "order", "sweep", "sweep_many"]
