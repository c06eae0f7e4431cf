"""Compile strategies into one Bytewax dataflow.

    source (symbol, bars) -> key by symbol
      -> "evaluate": per symbol, validate bars and evaluate the node graph of every strategy
         over the batch with numpy kernels (state carried between batches)
      -> key by strategy
      -> "portfolio": align symbols in time, cap gross, derive returns, update metrics
      -> sink

Replay and live differ only in the source: replay emits large batches, live one bar per
batch; the graph is the same and the output does not depend on the batching.

>>> import numpy as np
>>> from qmtl.core.expr import col
>>> spec = StrategySpec("s", ["A"], col("close").sma(2) > col("close").sma(3), 0.0, 1.0, 252.0)
>>> bars = {"ts": np.arange(1, 6), "open": np.ones(5), "high": np.full(5, 9.0),
...         "low": np.ones(5), "close": np.array([1.0, 2.0, 3.0, 2.0, 4.0]),
...         "volume": np.ones(5)}
>>> outs = run_dataflow([spec], lambda: iter([("A", bars)]))
>>> np.concatenate([o.batch.returns for o in outs if o.batch]).round(4).tolist()
[0.0, 0.0, 0.0, -0.3333, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, operator
from bytewax.testing import cluster_main, run_main

from dataflows.control import RunControl
from dataflows.graph import Program, ProgramState
from dataflows.metrics import MetricSet
from dataflows.panel import lookback_bars, needs_panel
from dataflows.panel_flow import PanelLogic, panel_groups
from dataflows.portfolio import Portfolio, PortfolioBatch, SignalBatch
from dataflows.recovery import snapshot_copy
from dataflows.replay import CallbackSink, ReplaySource
from dataflows.strategy_spec import StrategyOutput, StrategySpec
from qmtl.core.bars import Batch, validate_bars
from qmtl.core.fingerprint import BarHasher
from qmtl.core.intervals import Annualization, span_annualization

OnBad = Literal["raise", "drop"]


METRICS_EVERY = 1_000
"""Bars between metric snapshots (a snapshot is also taken at the end of the stream)."""


@dataclass
class _SymbolState:
    program: ProgramState
    last_ts: int | None = None


def _evaluate_step(
    specs: list[StrategySpec],
    program: Program,
    control: RunControl,
    on_bad: OnBad,
    prices: bool = False,
    signals_from: int | None = None,
) -> Callable[[_SymbolState | None, tuple[str, Batch]], Any]:
    members = {spec.key: set(spec.symbols) for spec in specs}

    def evaluate(
        state: _SymbolState | None, item: tuple[str, Batch]
    ) -> tuple[_SymbolState | None, list[tuple[str, SignalBatch]]]:
        if control.failed:
            return state, []
        symbol, bars = item
        try:
            if state is None:
                state = _SymbolState(ProgramState(program))
            elif not state.program.attached:  # restored from a recovery snapshot
                state.program.attach(program)
            bars, dropped = validate_bars(symbol, bars, last_ts=state.last_ts, on_bad=on_bad)
            if dropped:
                control.dropped += dropped
            if len(bars["ts"]) == 0:
                return state, []
            # kept on the run, not in the (pickled) step state: hashlib does not pickle
            hasher = control.seen.get(symbol)
            if hasher is None:
                hasher = control.seen[symbol] = BarHasher()
            hasher.update(bars)
            state.last_ts = int(bars["ts"][-1])
            outputs = state.program.evaluate(bars)
        except Exception as exc:
            control.fail(exc)
            return state, []
        keep = slice(None)
        if signals_from is not None and int(bars["ts"][0]) < signals_from:
            # look-back bars: they warm the kernels up, the portfolio starts after them
            cut = int(np.searchsorted(bars["ts"], signals_from, side="left"))
            if cut == len(bars["ts"]):
                return state, []
            keep = slice(cut, None)
        emitted = []
        for spec in specs:
            if symbol not in members[spec.key]:
                continue
            w = outputs[spec.key]
            w = np.where(np.isfinite(w), w, 0.0)
            opens = bars["open"][keep]  # the portfolio reads them (live, or rule next_open)
            emitted.append(
                (spec.key, SignalBatch(symbol, bars["ts"][keep], w[keep], bars["close"][keep],
                                       opens))
            )
        return state, emitted

    return evaluate


EvaluateFn = Callable[[_SymbolState | None, tuple[str, Batch]],
                      tuple[_SymbolState | None, list[tuple[str, SignalBatch]]]]


class _EvaluateLogic(op.StatefulLogic[tuple[str, Batch], tuple[str, SignalBatch], Any]):
    """One symbol's program state: ``op.stateful_flat_map``'s logic (same snapshot, a
    ``_SymbolState``) with a snapshot that copies only when the run keeps snapshots (see
    :func:`dataflows.recovery.snapshot_copy`)."""

    def __init__(self, evaluate: EvaluateFn, recovery: bool,
                 resume: _SymbolState | None) -> None:
        self.evaluate = evaluate
        self.recovery = recovery
        self.state = resume

    def on_item(self, value: tuple[str, Batch]
                ) -> tuple[Iterable[tuple[str, SignalBatch]], bool]:
        self.state, emitted = self.evaluate(self.state, value)
        return emitted, self.RETAIN if self.state is not None else self.DISCARD

    def snapshot(self) -> _SymbolState | None:
        return snapshot_copy(self.state, self.recovery)


@operator
def _evaluate(step_id: str, up: op.KeyedStream[tuple[str, Batch]], evaluate: EvaluateFn,
              recovery: bool) -> op.KeyedStream[tuple[str, SignalBatch]]:
    # the step ids of ``op.stateful_flat_map`` (``evaluate.stateful``), so a recovery
    # folder written before this step had its own logic still resumes
    return op.stateful("stateful", up, lambda resume: _EvaluateLogic(evaluate, recovery,
                                                                     resume))


class _PortfolioLogic(op.StatefulLogic[tuple[str, SignalBatch], StrategyOutput, Any]):
    """One strategy's portfolio and metrics (built on its first item, which names it).

    Rows at or before ``emit_after`` (a live run's warm-up on history) move the portfolio's
    state but are neither emitted nor counted in the metrics. The state is snapshotted for
    Bytewax recovery (when the run keeps snapshots: ``recovery``) and restored from
    ``resume``.
    """

    _FIELDS = ("key", "portfolio", "metrics", "n_bars", "metered", "as_of", "pending", "seq",
               "first_ts", "annual")

    def __init__(
        self,
        specs: dict[str, StrategySpec],
        control: RunControl,
        metrics_every: int,
        emit_after: int | None = None,
        prices: bool = False,
        resume: dict[str, Any] | None = None,
        recovery: bool = True,
    ) -> None:
        self.specs = specs
        self.recovery = recovery
        self.control = control
        self.every = metrics_every
        self.emit_after = emit_after
        self.prices = prices
        self.key: str | None = None
        self.portfolio: Portfolio | None = None
        self.metrics: MetricSet | None = None
        self.n_bars = 0
        self.metered = 0  # n_bars at the last metrics snapshot
        self.as_of = 0
        self.pending: list[PortfolioBatch] = []  # batches not yet in the metrics
        self.seq = 0  # n_bars at the last metrics snapshot (see StrategyOutput.seq)
        self.first_ts: int | None = None  # the first emitted bar (for the annualization)
        self.annual: Annualization | None = None
        if resume is not None:
            for name in self._FIELDS:
                if name in resume:  # a snapshot of an older version lacks the newer fields
                    setattr(self, name, resume[name])

    @property
    def spec(self) -> StrategySpec | None:
        return None if self.key is None else self.specs[self.key]

    def _emit(self, final: bool) -> list[StrategyOutput]:
        if self.control.failed or self.portfolio is None:
            return []
        assert self.key is not None and self.metrics is not None
        try:
            batch = self.portfolio.drain(final=final)
            if batch is not None and self.emit_after is not None:
                batch = batch.after(self.emit_after)
            if batch is not None:
                self.n_bars += len(batch)
                self.as_of = int(batch.ts[-1])
                self.pending.append(batch)
            due = final or self.n_bars // self.every > self.metered // self.every
            metrics = returns = returns_ts = None
            if due and self.pending:
                # metrics are updated in one go per snapshot: cheap when bars arrive one by one
                def cat(name: str) -> np.ndarray:
                    parts = [getattr(b, name) for b in self.pending]
                    return parts[0] if len(parts) == 1 else np.concatenate(parts)

                returns = cat("returns")
                returns_ts = cat("ts")
                if self.first_ts is None:
                    self.first_ts = int(returns_ts[0])
                spec = self.specs[self.key]
                if spec.measured:
                    self.annual = span_annualization(
                        spec.interval or "1d", self.n_bars, self.first_ts, self.as_of,
                        spec.calendar)
                    if self.annual.source == "interval":
                        self.annual = Annualization(spec.periods_per_year, "interval",
                                                    self.annual.detail)
                    self.metrics.annualize(self.annual.periods_per_year)
                else:
                    self.annual = Annualization(spec.periods_per_year, "override",
                                                "--periods-per-year")
                self.metrics.update(
                    returns, turnover=cat("turnover"), gross=cat("gross"), equity=cat("equity")
                )
                metrics = self.metrics.get()
                self.pending.clear()
                self.metered = self.n_bars
                self.seq = self.n_bars
            if batch is None and metrics is None:
                return []
            return [
                StrategyOutput(
                    self.key, batch, metrics, self.n_bars, self.as_of, returns, self.seq,
                    returns_ts, self.annual if metrics is not None else None,
                )
            ]
        except Exception as exc:
            self.control.fail(exc)
            return []

    def on_item(self, value: tuple[str, SignalBatch]) -> tuple[Iterable[StrategyOutput], bool]:
        if self.control.failed:
            return [], self.RETAIN
        key, signal = value
        try:
            if self.portfolio is None:
                spec = self.specs[key]
                self.key = key
                self.portfolio = spec.portfolio(self.prices)
                self.metrics = MetricSet(spec.periods_per_year)
            self.portfolio.push(signal)
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN
        return self._emit(final=False), self.RETAIN

    def on_eof(self) -> tuple[Iterable[StrategyOutput], bool]:
        return self._emit(final=True), self.RETAIN

    def snapshot(self) -> dict[str, Any] | None:
        return snapshot_copy({name: getattr(self, name) for name in self._FIELDS}, self.recovery)


def build_program(specs: list[StrategySpec]) -> Program:
    """One program for all strategies: shared nodes are evaluated once per symbol.

    >>> from qmtl.core.expr import col
    >>> a = StrategySpec("a", ["X"], col("close").sma(5) > 0, 0.0, 1.0, 252.0)
    >>> b = StrategySpec("b", ["X"], col("close").sma(5) > 1, 0.0, 1.0, 252.0)
    >>> [n.op for n in build_program([a, b]).nodes].count("rolling_mean")
    1
    """
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"strategy keys must be unique, got {keys}")
    return Program({s.key: s.weight for s in specs})


def spec_lookback(spec: StrategySpec) -> int:
    """Bars of warm-up a strategy needs (a coarser interval's counted in its own bars).

    >>> from qmtl.core.expr import col
    >>> spec_lookback(StrategySpec("s", ["A"], col("close").sma(5), 0.0, 1.0, 252.0))
    4
    """
    return lookback_bars(spec.weight, spec.interval)


def build_core(
    bars: op.Stream[tuple[str, Batch]],
    specs: list[StrategySpec],
    control: RunControl,
    *,
    on_bad: OnBad = "raise",
    metrics_every: int = METRICS_EVERY,
    emit_after: int | None = None,
    prices: bool = False,
    signals_from: int | None = None,
    recovery: bool = True,
) -> op.KeyedStream[StrategyOutput]:
    """The steps every run shares, backtest or live: ``(symbol, batch)`` items in, one
    :class:`StrategyOutput` stream (keyed by strategy) out. Only the source and the sinks
    around it differ between replay and live. ``recovery=False`` says the flow runs without
    a Bytewax recovery config: its stateful steps then skip copying their state for the
    snapshots Bytewax takes at every epoch's close and drops unread.

    >>> from qmtl.core.expr import col
    >>> spec = StrategySpec("s", ["A"], col("close") > 0, 0.0, 1.0, 252.0)
    >>> flow = Dataflow("doc")
    >>> bars = op.input("bars", flow, ReplaySource(lambda: iter([])))
    >>> _ = build_core(bars, [spec], RunControl())
    >>> core_step_ids(flow)
    ['doc.evaluate', 'doc.key_by_strategy', 'doc.key_by_symbol', 'doc.portfolio']
    """
    if metrics_every < 1:
        raise ValueError(f"metrics_every must be >= 1, got {metrics_every}")
    by_key = {s.key: s for s in specs}
    keyed = op.map("key_by_symbol", bars, lambda item: (item[0], item))
    panel = [s for s in specs if needs_panel(s.weight)]
    plain = [s for s in specs if not needs_panel(s.weight)]
    program = build_program(plain if panel else specs)
    if panel:
        # cross-sectional strategies: one step per universe (dataflows.panel); the
        # per-symbol step gets only the symbols its own strategies trade
        plain_syms = {sym for s in plain for sym in s.symbols}
        keyed = op.filter("route_plain", keyed, lambda kv: kv[0] in plain_syms)
        groups = {g.key: g for g in panel_groups(panel)}
        owner: dict[str, set[str]] = {}
        for g in groups.values():
            for sym in g.program.needed:
                if sym not in plain_syms and not any(sym in v for v in owner.values()):
                    owner.setdefault(g.key, set()).add(sym)
        needed = {k: set(g.program.needed) for k, g in groups.items()}
        routed = op.flat_map(
            "route_panel", bars,
            lambda item: [(k, (k, item[0], item[1])) for k, n in needed.items() if item[0] in n],
        )
        panel_signals = op.stateful(
            "evaluate_panel", routed,
            lambda resume: PanelLogic(groups, control, on_bad, prices, signals_from, owner,
                                      resume, recovery=recovery),
        )
    signals = _evaluate(
        "evaluate",
        keyed,
        _evaluate_step(plain if panel else specs, program, control, on_bad, prices, signals_from),
        recovery,
    )
    if panel:
        signals = op.merge("merge_signals", signals, panel_signals)
    by_strategy = op.map("key_by_strategy", signals, lambda kv: (kv[1][0], kv[1]))
    return op.stateful(
        "portfolio",
        by_strategy,
        lambda resume: _PortfolioLogic(
            by_key, control, metrics_every, emit_after, prices, resume, recovery
        ),
    )


CORE_STEPS = ("evaluate", "key_by_strategy", "key_by_symbol", "portfolio", "route_plain",
              "route_panel", "evaluate_panel", "merge_signals")
"""Step names :func:`build_core` adds (the same in every run)."""


def core_step_ids(flow: Dataflow) -> list[str]:
    """The ids of a flow's core steps, sorted (to check that two runs share the graph).

    >>> core_step_ids(Dataflow("empty"))
    []
    """
    ids = [step.step_id for step in flow.substeps]
    return sorted(i for i in ids if i.rsplit(".", 1)[-1] in CORE_STEPS)


def build_flow(
    specs: list[StrategySpec],
    make_items: Callable[[], Iterator[tuple[str, Batch]]],
    sink: Callable[[StrategyOutput], None],
    control: RunControl,
    *,
    on_bad: OnBad = "raise",
    flow_id: str = "qmtl",
    metrics_every: int = METRICS_EVERY,
    signals_from: int | None = None,
    recovery: bool = False,
) -> Dataflow:
    """The Bytewax dataflow for ``specs`` over the items of ``make_items()``; bars before
    ``signals_from`` only warm the kernels up (the portfolio starts at ``signals_from``).
    A replay keeps no snapshots: give ``recovery=True`` to run the flow with a Bytewax
    recovery config (see :func:`build_core`).

    >>> from qmtl.core.expr import col
    >>> spec = StrategySpec("s", ["A"], col("close") > 0, 0.0, 1.0, 252.0)
    >>> flow = build_flow([spec], lambda: iter([]), print, RunControl())
    >>> flow.flow_id
    'qmtl'
    """
    flow = Dataflow(flow_id)
    bars = op.input("bars", flow, ReplaySource(make_items, control))
    results = build_core(bars, specs, control, on_bad=on_bad, metrics_every=metrics_every,
                         signals_from=signals_from, recovery=recovery)
    op.output("sink", results, CallbackSink(lambda kv: sink(kv[1])))
    return flow


def run_dataflow(
    specs: list[StrategySpec],
    make_items: Callable[[], Iterator[tuple[str, Batch]]],
    *,
    workers: int = 1,
    on_bad: OnBad = "raise",
    progress: Callable[[int], None] | None = None,
    on_output: Callable[[StrategyOutput], None] | None = None,
    metrics_every: int = METRICS_EVERY,
    control: RunControl | None = None,
    signals_from: int | None = None,
) -> list[StrategyOutput]:
    """Build and run the flow; return every output in order per strategy; raise the first
    error a step met (with its own message, no engine backtrace).

    ``on_output`` sees each output as soon as it is produced (to stream metrics out while the
    replay runs); an exception it raises stops the run and is raised here.

    >>> from qmtl.core.expr import col
    >>> spec = StrategySpec("s", ["A"], col("close") > 0, 0.0, 1.0, 252.0)
    >>> bars = {"ts": np.arange(1, 4), "open": np.ones(3), "high": np.ones(3),
    ...         "low": np.ones(3), "close": np.ones(3), "volume": np.ones(3)}
    >>> outs = run_dataflow([spec], lambda: iter([("A", bars)]))
    >>> outs[-1].metrics["n_bars"], outs[-1].n_bars
    (3.0, 3)
    """
    control = control or RunControl()
    control.progress = progress or control.progress
    outputs: list[StrategyOutput] = []

    def sink(out: StrategyOutput) -> None:
        outputs.append(out)
        if on_output is not None and not control.failed:
            try:
                on_output(out)
            except Exception as exc:
                control.fail(exc)

    flow = build_flow(specs, make_items, sink, control, on_bad=on_bad,
                      metrics_every=metrics_every, signals_from=signals_from)
    if workers <= 1:
        run_main(flow)
    else:
        cluster_main(flow, [], 0, worker_count_per_proc=workers)
    if control.error is not None:
        raise control.error
    return outputs
