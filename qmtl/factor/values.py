"""Many alphas' raw values (not weights) over a universe, in one Bytewax flow: every node
the alphas share is evaluated once (content ids), by the engine's own cross-sectional
evaluator (:class:`dataflows.panel.PanelState`), so a value equals what a strategy of that
alpha reads before it turns the values into weights.

    source (symbol, bars) -> key "all" -> one PanelState of every alpha and the close
      -> at the end of the stream, the panels (bar times x symbols) -> sink

>>> from connectors.data.synthetic import generate_bars
>>> from qmtl.core.expr import col
>>> data = {s: generate_bars(30, seed=i) for i, s in enumerate("AB")}
>>> v = evaluate({"mom": col("close").pct_change(5)}, data, ["A", "B"])
>>> v.panels["mom"].shape, v.close.shape, v.nodes
((30, 2), (30, 2), 5)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

from connectors.data.seamless import SeamlessDataProvider
from dataflows.control import RunControl
from dataflows.panel import PanelProgram, PanelState
from dataflows.replay import CallbackSink, ReplaySource
from qmtl.core.bars import Batch, validate_bars
from qmtl.core.expr import Expr, col
from qmtl.core.expr_nodes import walk
from qmtl.sources import BacktestError, DataSource, as_provider, resolve_source

__all__ = ["CLOSE", "Values", "evaluate"]

CLOSE = "__close__"
"""The output name of the close prices the forward returns are computed from."""


@dataclass
class Values:
    """Panels of bar times x symbols: each alpha's values and the close; NaN where a symbol
    has no bar or the alpha no value (warm-up). ``nodes`` is how many distinct nodes the
    flow evaluated, ``nodes_alone`` the sum of each alpha's own node count.

    >>> Values(np.arange(2), ["A"], {}, np.ones((2, 1)), 1, 1).dedup
    1.0
    """

    ts: np.ndarray
    symbols: list[str]
    panels: dict[str, np.ndarray]
    close: np.ndarray
    nodes: int
    nodes_alone: int

    @property
    def dedup(self) -> float:
        """How many times fewer nodes were evaluated than evaluating each alpha alone.

        >>> Values(np.arange(1), ["A"], {}, np.ones((1, 1)), 4, 10).dedup
        2.5
        """
        return self.nodes_alone / self.nodes if self.nodes else 1.0


class _Collect(op.StatefulLogic[tuple[str, Batch], dict[str, Any], None]):
    """The one PanelState of the flow; at the end, every output per symbol."""

    def __init__(self, program: PanelProgram, control: RunControl) -> None:
        self.state = PanelState(program)
        self.control = control
        self.last: dict[str, int] = {}
        self.parts: dict[str, dict[str, list[np.ndarray]]] = {}
        self.ts: dict[str, list[np.ndarray]] = {}

    def _take(self, outputs: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> None:
        for name, per in outputs.items():
            for sym, (ts, v) in per.items():
                self.parts.setdefault(name, {}).setdefault(sym, []).append(v)
                if name == CLOSE:
                    self.ts.setdefault(sym, []).append(ts)

    def on_item(self, value: tuple[str, Batch]) -> tuple[Iterable[dict[str, Any]], bool]:
        if self.control.failed:
            return [], self.RETAIN
        symbol, bars = value
        try:
            bars, _ = validate_bars(symbol, bars, last_ts=self.last.get(symbol))
            if len(bars["ts"]):
                self.last[symbol] = int(bars["ts"][-1])
                self.state.push(symbol, bars)
                self._take(self.state.drain()[0])
        except Exception as exc:
            self.control.fail(exc)
        return [], self.RETAIN

    def on_eof(self) -> tuple[Iterable[dict[str, Any]], bool]:
        if self.control.failed:
            return [], self.RETAIN
        try:
            self._take(self.state.drain(final=True)[0])
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN
        cat = {name: {s: np.concatenate(v) for s, v in per.items()}
               for name, per in self.parts.items()}
        ts = {s: np.concatenate(v) for s, v in self.ts.items()}
        return [{"values": cat, "ts": ts}], self.DISCARD

    def snapshot(self) -> None:
        return None


def _panels(symbols: list[str], ts: Mapping[str, np.ndarray],
            values: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[np.ndarray, dict]:
    timeline = np.unique(np.concatenate([ts[s] for s in symbols if s in ts]
                                        or [np.empty(0, np.int64)])).astype(np.int64)
    rows = {s: np.searchsorted(timeline, ts[s]) for s in symbols if s in ts}
    out = {}
    for name, per in values.items():
        panel = np.full((len(timeline), len(symbols)), np.nan)
        for j, s in enumerate(symbols):
            if s in per and s in rows:
                panel[rows[s], j] = per[s]
        out[name] = panel
    return timeline, out


def evaluate(
    alphas: Mapping[str, Expr],
    data: DataSource,
    symbols: Sequence[str],
    interval: str = "1d",
    *,
    start: int | None = None,
    end: int | None = None,
    batch_size: int = 10_000,
) -> Values:
    """The values of every alpha (an :class:`~qmtl.core.expr.Expr` by name, e.g.
    ``qmtl.alpha(text).weight``'s input, or :func:`qmtl.alpha.functions.to_expr`'s) over
    ``data`` (as for :func:`qmtl.backtest`), in one flow; ``start``/``end`` are ns.

    >>> from qmtl.core.expr import col
    >>> evaluate({}, {}, ["A"])
    Traceback (most recent call last):
    ...
    qmtl.sources.BacktestError: no alphas to evaluate
    """
    if not alphas:
        raise BacktestError("no alphas to evaluate")
    if CLOSE in alphas:
        raise BacktestError(f"{CLOSE!r} is a reserved name")
    universe = sorted(set(symbols))
    if not universe:
        raise BacktestError("no symbols: a factor is read across a universe")
    outputs = {**alphas, CLOSE: col("close")}
    program = PanelProgram(outputs, universe, interval)
    source: SeamlessDataProvider | Mapping[str, Batch]
    source = data if isinstance(data, Mapping) else as_provider(data)
    make_items, _ = resolve_source(source, list(program.needed), interval, start, end,
                                   batch_size)
    control = RunControl()
    got: list[dict[str, Any]] = []
    flow = Dataflow("qmtl_factor")
    bars = op.input("bars", flow, ReplaySource(make_items, control))
    keyed = op.key_on("all", bars, lambda _: "all")
    done = op.stateful("evaluate", keyed, lambda _: _Collect(program, control))
    op.output("sink", done, CallbackSink(lambda kv: got.append(kv[1])))
    run_main(flow)
    if control.error is not None:
        raise control.error
    result = got[0]
    ts, panels = _panels(universe, result["ts"], result["values"])
    close = panels.pop(CLOSE)
    alone = sum(len(list(walk([e]))) for e in alphas.values())
    return Values(ts, universe, panels, close, len(list(walk(alphas.values()))), alone)
