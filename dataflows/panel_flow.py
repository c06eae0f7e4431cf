"""The cross-sectional stage as a Bytewax step: one stateful step per group of strategies that
share a universe and interval (:class:`PanelGroup`), fed every bar of the symbols the group
needs (traded and context), emitting per-symbol signal batches like the per-symbol step.

>>> from qmtl.core.expr import col
>>> from qmtl import cs
>>> g = PanelGroup("panel:0", ["A", "B"], None, {"s": cs.rank(col("close"))})
>>> g.program.needed
['A', 'B']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import bytewax.operators as op
import numpy as np

from dataflows.control import RunControl
from dataflows.panel import PanelProgram, PanelState
from dataflows.portfolio import SignalBatch
from dataflows.recovery import snapshot_copy
from qmtl.core.bars import Batch, validate_bars
from qmtl.core.expr import Expr
from qmtl.core.fingerprint import BarHasher


class PanelGroup:
    """Strategies evaluated together in one cross-sectional step: a key, the traded
    universe, the strategies' interval and their weight expressions by strategy key.

    >>> from qmtl.core.expr import col
    >>> PanelGroup("g", ["B", "A"], "1d", {"s": col("close")}).program.symbols
    ['A', 'B']
    """

    def __init__(self, key: str, symbols: list[str], interval: str | None,
                 weights: Mapping[str, Expr]) -> None:
        self.key = key
        self.weights = dict(weights)
        self.program = PanelProgram(self.weights, symbols, interval)


class PanelLogic(op.StatefulLogic[tuple[str, str, Batch], tuple[str, SignalBatch], Any]):
    """One group's :class:`~dataflows.panel.PanelState`, validation of its bars and the
    fingerprint of the symbols it owns (``hashes``: symbols no other step hashes).
    Snapshotted for recovery (when the run keeps snapshots: ``recovery``) and restored from
    ``resume``."""

    def __init__(
        self,
        groups: Mapping[str, PanelGroup],
        control: RunControl,
        on_bad: str,
        prices: bool,
        signals_from: int | None,
        hashes: Mapping[str, set[str]],
        resume: dict[str, Any] | None = None,
        *,
        recovery: bool = True,
    ) -> None:
        self.groups = groups
        self.recovery = recovery
        self.control = control
        self.on_bad = on_bad
        self.prices = prices
        self.signals_from = signals_from
        self.hashes = hashes
        self.key: str | None = None
        self.state: PanelState | None = None
        self.last_ts: dict[str, int] = {}
        if resume is not None:
            self.key, self.state, self.last_ts = resume["key"], resume["state"], resume["last_ts"]

    def _emit(self, final: bool) -> list[tuple[str, SignalBatch]]:
        assert self.state is not None and self.key is not None
        outputs, chunk = self.state.drain(final=final)
        emitted: list[tuple[str, SignalBatch]] = []
        group = self.groups[self.key]
        for spec_key in group.weights:
            for sym, (ts, w) in outputs.get(spec_key, {}).items():
                bars = chunk.get(sym)
                if bars is None or len(ts) == 0:
                    continue
                keep = slice(None)
                if self.signals_from is not None and int(ts[0]) < self.signals_from:
                    cut = int(np.searchsorted(ts, self.signals_from, side="left"))
                    if cut == len(ts):
                        continue
                    keep = slice(cut, None)
                w = np.where(np.isfinite(w), w, 0.0)
                opens = bars["open"][keep]
                emitted.append((spec_key, SignalBatch(sym, ts[keep], w[keep],
                                                      bars["close"][keep], opens)))
        return emitted

    def on_item(self, value: tuple[str, str, Batch]
                ) -> tuple[Iterable[tuple[str, SignalBatch]], bool]:
        if self.control.failed:
            return [], self.RETAIN
        key, symbol, bars = value
        try:
            group = self.groups[key]
            if self.state is None:
                self.key = key
                self.state = PanelState(group.program)
            elif not self.state.attached:  # restored from a recovery snapshot
                self.state.attach(group.program)
            bars, dropped = validate_bars(symbol, bars, last_ts=self.last_ts.get(symbol),
                                          on_bad=self.on_bad)  # type: ignore[arg-type]
            mine = symbol in self.hashes.get(key, set())
            if dropped and mine:
                self.control.dropped += dropped
            if len(bars["ts"]) == 0:
                return [], self.RETAIN
            if mine:
                hasher = self.control.seen.get(symbol)
                if hasher is None:
                    hasher = self.control.seen[symbol] = BarHasher()
                hasher.update(bars)
            self.last_ts[symbol] = int(bars["ts"][-1])
            self.state.push(symbol, bars)
            return self._emit(final=False), self.RETAIN
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN

    def on_eof(self) -> tuple[Iterable[tuple[str, SignalBatch]], bool]:
        if self.control.failed or self.state is None:
            return [], self.RETAIN
        try:
            if not self.state.attached:
                assert self.key is not None
                self.state.attach(self.groups[self.key].program)
            return self._emit(final=True), self.RETAIN
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN

    def snapshot(self) -> dict[str, Any] | None:
        return snapshot_copy({"key": self.key, "state": self.state, "last_ts": self.last_ts},
                             self.recovery)


def panel_groups(specs: Iterable[Any]) -> list[PanelGroup]:
    """Group cross-sectional strategy specs by universe and interval, checking that every
    symbol a strategy reads is traded or in its context.

    >>> from qmtl.core.expr import col
    >>> from dataflows.compiler import StrategySpec
    >>> s = StrategySpec("s", ["A"], col("close", symbol="SPY"), 0.0, 1.0, 252.0)
    >>> panel_groups([s])
    Traceback (most recent call last):
    ...
    ValueError: strategy s reads bars of 'SPY', which is neither traded nor in its context
    """
    by: dict[tuple[tuple[str, ...], str | None], dict[str, Expr]] = {}
    for spec in specs:
        allowed = set(spec.symbols) | set(spec.context)
        prog = PanelProgram({spec.key: spec.weight}, spec.symbols, spec.interval)
        for sym in prog.needed:
            if sym not in allowed:
                raise ValueError(f"strategy {spec.key} reads bars of {sym!r}, which is neither "
                                 "traded nor in its context")
        by.setdefault((tuple(sorted(set(spec.symbols))), spec.interval), {})[spec.key] = (
            spec.weight)
    return [PanelGroup(f"panel:{i}", list(k[0]), k[1], w) for i, (k, w) in enumerate(by.items())]
