"""Many strategies (a parameter sweep's variants) in one Bytewax flow, split across workers.

    worker w of W: its own reader of the bars -> its share of the variants (a contiguous
                   slice, so neighbours that share nodes stay together) -> one program of
                   their distinct nodes per symbol -> one portfolio per variant
      -> at the end of the stream, one :class:`VariantRun` per variant
      -> gathered on one worker -> sink

Every worker reads the bars it needs itself (from the catalog, through ``make_items``):
no bars travel between workers or processes, only each variant's final result. Nodes with
equal content ids are evaluated once per worker and symbol; the per-symbol evaluation and
the portfolio are the compiler's own (:mod:`dataflows.compiler`), so a variant's returns
are bit-identical to a run of that strategy alone, for any number of workers.

>>> import numpy as np
>>> from qmtl.core.expr import col
>>> c = col("close")
>>> specs = [StrategySpec(f"v{n}", ["A"], c > c.sma(n), 0.0, 1.0, 252.0) for n in (2, 3)]
>>> bars = {"ts": np.arange(1, 6), "open": np.ones(5), "high": np.full(5, 9.0),
...         "low": np.ones(5), "close": np.array([1.0, 2.0, 3.0, 2.0, 4.0]),
...         "volume": np.ones(5)}
>>> runs, stats = run_sweep_flow(specs, lambda: iter([("A", bars)]))
>>> [r.key for r in runs], stats.nodes_evaluated, stats.nodes_per_variant
(['v2', 'v3'], 5, 6)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import cluster_main, run_main

from dataflows.compiler import (
    METRICS_EVERY,
    OnBad,
    StrategySpec,
    _evaluate_step,
    _PortfolioLogic,
    build_program,
)
from dataflows.control import RunControl
from dataflows.graph import Program
from dataflows.metrics import MetricSet
from dataflows.panel import needs_panel
from dataflows.panel_flow import PanelLogic, panel_groups
from dataflows.replay import CallbackSink
from qmtl.core.bars import Batch
from qmtl.core.expr_nodes import walk

ItemFactory = Callable[[], Iterator[tuple[str, Batch]]]


@dataclass
class VariantRun:
    """One variant's result: its portfolio's bar times, returns and equity, and its final
    metrics (as a run of that strategy alone would report them).

    >>> VariantRun("v", np.arange(2), np.zeros(2), np.ones(2), {"sharpe": 0.0}).n_bars
    2
    """

    key: str
    ts: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    metrics: dict[str, float]

    @property
    def n_bars(self) -> int:
        """Bars in the variant's portfolio.

        >>> VariantRun("v", np.arange(3), np.zeros(3), np.ones(3), {}).n_bars
        3
        """
        return len(self.ts)


@dataclass
class SweepStats:
    """What a sweep flow computed: distinct nodes evaluated (per worker, summed) against the
    sum of every variant's own node count, and how the variants were split.

    >>> SweepStats(nodes_evaluated=10, nodes_per_variant=40).dedup
    4.0
    """

    nodes_evaluated: int = 0
    nodes_per_variant: int = 0
    kernel_calls: int = 0
    shards: list[int] = field(default_factory=list)
    seen: dict[str, Any] = field(default_factory=dict)
    """Per symbol, a summary of the bars the run read (first, last, rows, content hash)."""
    dropped: int = 0
    flow_seconds: float = 0.0
    """Wall time of the flow itself (with processes: the slowest process's, start-up
    excluded)."""

    @property
    def dedup(self) -> float:
        """How many times fewer nodes were evaluated than running each variant alone.

        >>> SweepStats(3, 3).dedup
        1.0
        """
        return self.nodes_per_variant / self.nodes_evaluated if self.nodes_evaluated else 1.0


def shard(n: int, index: int, count: int) -> slice:
    """The variants worker ``index`` of ``count`` owns: a contiguous slice, sizes within one.

    >>> [shard(5, i, 2) for i in range(2)]
    [slice(0, 2, None), slice(2, 5, None)]
    """
    return slice(index * n // count, (index + 1) * n // count)


class _ShardControl(RunControl):
    """A worker's own control (its own bar summaries) whose errors stop the whole run."""

    def __init__(self, parent: RunControl) -> None:
        super().__init__()
        self.parent = parent

    def fail(self, exc: BaseException) -> None:
        self.parent.fail(exc)

    @property
    def failed(self) -> bool:  # type: ignore[override]
        return self.parent.failed


class _ShardPartition(StatelessSourcePartition[Any]):
    """One worker's reader, evaluator and portfolios (see the module docstring).

    Per-symbol variants share one program per symbol; cross-sectional ones (``cs.*``, other
    symbols' or coarser bars) are evaluated by the compiler's own panel logic, one per
    universe, exactly as in a run of the strategy alone (:func:`dataflows.compiler.build_core`).
    """

    BUDGET_S = 0.05  # seconds of work per call before handing control back to Bytewax

    def __init__(self, specs: list[StrategySpec], make_items: ItemFactory, control: RunControl,
                 options: dict[str, Any], report: Callable[[_ShardPartition], None]) -> None:
        self.specs = specs
        self.control = _ShardControl(control)
        self.report = report
        self.done = not specs
        self.items: Iterator[tuple[str, Batch]] | None = None if self.done else make_items()
        panel = [s for s in specs if needs_panel(s.weight)]
        plain = [s for s in specs if not needs_panel(s.weight)]
        self.program: Program | None = build_program(plain) if plain else None
        self.plain_symbols = {sym for s in plain for sym in s.symbols}
        self.panels: dict[str, PanelLogic] = {}
        self.needed: dict[str, set[str]] = {}
        self.panel_nodes = 0
        if panel:
            groups = {g.key: g for g in panel_groups(panel)}
            owner: dict[str, set[str]] = {}
            for g in groups.values():
                for sym in g.program.needed:
                    if sym not in self.plain_symbols and not any(
                            sym in v for v in owner.values()):
                        owner.setdefault(g.key, set()).add(sym)
            for key, g in groups.items():
                self.panels[key] = PanelLogic(groups, self.control, options["on_bad"], False,
                                              options["signals_from"], owner, recovery=False)
                self.needed[key] = set(g.program.needed)
                self.panel_nodes += len(g.program.nodes)
        self.states: dict[str, Any] = {}
        self.portfolios: dict[str, _PortfolioLogic] = {}
        self.parts: dict[str, list[Any]] = {s.key: [] for s in specs}
        self.metrics: dict[str, dict[str, float]] = {}
        self.progress = control.progress
        if self.program is not None:
            self.step = _evaluate_step(plain, self.program, self.control, options["on_bad"],
                                       False, options["signals_from"])
        by_key = {s.key: s for s in specs}
        for s in specs:
            logic = _PortfolioLogic(by_key, self.control, options["metrics_every"])
            # built here rather than on the first item: without per-symbol rows
            logic.key = s.key
            logic.portfolio = s.portfolio()
            logic.portfolio.rows = False
            logic.metrics = MetricSet(s.periods_per_year)
            self.portfolios[s.key] = logic

    @property
    def nodes(self) -> int:
        """Distinct nodes this worker evaluates: its per-symbol program's and its panels'."""
        return (len(self.program.nodes) if self.program is not None else 0) + self.panel_nodes

    def _signals(self, emitted: Any) -> None:
        for key, signal in emitted:
            self._take(self.portfolios[key].on_item((key, signal))[0])

    def _take(self, outs: Any) -> None:
        for out in outs:
            if out.batch is not None:
                self.parts[out.strategy].append(out.batch)
            if out.metrics is not None:
                self.metrics[out.strategy] = out.metrics

    def _finish(self) -> list[VariantRun]:
        for logic in self.panels.values():
            self._signals(logic.on_eof()[0])
        runs = []
        for key, logic in self.portfolios.items():
            self._take(logic.on_eof()[0])
            parts = self.parts.pop(key)

            def cat(name: str, parts: list[Any] = parts) -> np.ndarray:
                arrays = [getattr(b, name) for b in parts]
                return np.concatenate(arrays) if arrays else np.empty(0)

            runs.append(VariantRun(key, cat("ts").astype(np.int64), cat("returns"),
                                   cat("equity"), self.metrics.get(key, {})))
        self.report(self)
        return runs

    def next_batch(self) -> list[VariantRun]:
        if self.done:
            raise StopIteration
        assert self.items is not None
        deadline = time.perf_counter() + self.BUDGET_S
        while time.perf_counter() < deadline:
            if self.control.failed:
                self.done = True
                return []
            try:
                symbol, bars = next(self.items)
            except StopIteration:
                self.done = True
                return [] if self.control.failed else self._finish()
            except Exception as exc:  # a reader error: the runner reports it
                self.control.fail(exc)
                continue
            if self.program is not None and (not self.panels or symbol in self.plain_symbols):
                state, emitted = self.step(self.states.get(symbol), (symbol, bars))
                self.states[symbol] = state
                self._signals(emitted)
            for key, logic in self.panels.items():
                if symbol in self.needed[key]:
                    self._signals(logic.on_item((key, symbol, bars))[0])
            if self.progress is not None:
                self.progress(len(bars["ts"]) * len(self.specs))
        return []


class SweepSource(DynamicSource[VariantRun]):
    """Each worker runs its shard of ``specs`` over the bars it reads itself.

    >>> SweepSource([], lambda: iter([]), RunControl(), {}).build("in", 0, 1).next_batch()
    Traceback (most recent call last):
    ...
    StopIteration
    """

    def __init__(self, specs: list[StrategySpec], make_items: ItemFactory,
                 control: RunControl, options: dict[str, Any],
                 report: Callable[[_ShardPartition], None] | None = None) -> None:
        self.specs = specs
        self.make_items = make_items
        self.control = control
        self.options = options
        self.report = report or (lambda part: None)

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _ShardPartition:
        """Worker ``worker_index``'s partition: its shard (see :func:`shard`).

        >>> SweepSource([], lambda: iter([]), RunControl(), {}).build("in", 1, 2).specs
        []
        """
        mine = self.specs[shard(len(self.specs), worker_index, worker_count)]
        return _ShardPartition(mine, self.make_items, self.control, self.options, self.report)


def build_sweep_flow(
    specs: list[StrategySpec],
    make_items: ItemFactory,
    sink: Callable[[list[VariantRun]], None],
    control: RunControl,
    *,
    on_bad: OnBad = "raise",
    metrics_every: int = METRICS_EVERY,
    signals_from: int | None = None,
    report: Callable[[_ShardPartition], None] | None = None,
    flow_id: str = "qmtl_sweep",
) -> Dataflow:
    """The sweep's dataflow: ``sink`` gets every variant's :class:`VariantRun` once, on the
    one worker that gathers them.

    >>> flow = build_sweep_flow([], lambda: iter([]), print, RunControl())
    >>> [s.step_id for s in flow.substeps]
    ['qmtl_sweep.variants', 'qmtl_sweep.gather', 'qmtl_sweep.collect', 'qmtl_sweep.sink']
    """
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"strategy keys must be unique, got {keys}")
    options = {"on_bad": on_bad, "metrics_every": metrics_every, "signals_from": signals_from}
    flow = Dataflow(flow_id)
    runs = op.input("variants", flow, SweepSource(specs, make_items, control, options, report))
    keyed = op.key_on("gather", runs, lambda _: "all")
    gathered = op.fold_final("collect", keyed, list, lambda acc, run: [*acc, run])
    op.output("sink", gathered, CallbackSink(lambda kv: sink(kv[1])))
    return flow


def run_sweep_flow(
    specs: list[StrategySpec],
    make_items: ItemFactory,
    *,
    workers: int = 1,
    addresses: list[str] | None = None,
    process_id: int = 0,
    on_bad: OnBad = "raise",
    metrics_every: int = METRICS_EVERY,
    control: RunControl | None = None,
    signals_from: int | None = None,
) -> tuple[list[VariantRun] | None, SweepStats]:
    """Run the sweep flow (``workers`` threads; with ``addresses``, as process
    ``process_id`` of a Bytewax cluster); return the variants' runs in the order of
    ``specs`` (None on a process that did not gather them) and this process's stats.

    >>> from qmtl.core.expr import col
    >>> spec = StrategySpec("s", ["A"], col("close") > 0, 0.0, 1.0, 252.0)
    >>> bars = {"ts": np.arange(1, 4), "open": np.ones(3), "high": np.ones(3),
    ...         "low": np.ones(3), "close": np.ones(3), "volume": np.ones(3)}
    >>> runs, _ = run_sweep_flow([spec], lambda: iter([("A", bars)]), workers=2)
    >>> runs[0].metrics["n_bars"]
    3.0
    """
    control = control or RunControl()
    gathered: list[list[VariantRun]] = []
    stats = SweepStats(nodes_per_variant=sum(len(list(walk([s.weight]))) for s in specs))
    parts: list[_ShardPartition] = []
    flow = build_sweep_flow(specs, make_items, gathered.append, control, on_bad=on_bad,
                            metrics_every=metrics_every, signals_from=signals_from,
                            report=parts.append)
    t0 = time.perf_counter()
    if addresses:
        cluster_main(flow, addresses, process_id, worker_count_per_proc=workers)
    elif workers <= 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    stats.flow_seconds = time.perf_counter() - t0
    if control.error is not None:
        raise control.error
    for part in parts:
        stats.shards.append(len(part.specs))
        if part.specs:
            stats.nodes_evaluated += part.nodes
            stats.kernel_calls += sum(s.program.kernel_calls for s in part.states.values())
            stats.dropped = max(stats.dropped, part.control.dropped)
            if not stats.seen:  # every worker reads the same bars: the first one's summary
                stats.seen = {sym: h.summary() for sym, h in sorted(part.control.seen.items())}
    if not gathered:
        return None, stats
    order = {s.key: i for i, s in enumerate(specs)}
    return sorted(gathered[0], key=lambda r: order[r.key]), stats
