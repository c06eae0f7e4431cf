"""The cross-sectional stage: strategies whose graph reads across symbols or intervals.

A node of such a graph lives in a *domain* ``(symbol, interval)``: ``symbol`` None means
"each traded symbol" (the usual per-symbol series), a name means one fixed symbol
(``bars["SPY"]``); ``interval`` None means the strategy's bars, a name a coarser series
resampled from them (``bars.at("1d")``, :class:`dataflows.resample.Resampler`: a coarse bar
stamped ``T``, its close, exists once every symbol the program reads has reached ``T`` — no
bar of its bucket can still arrive — and is seen from bar times ``t >= T`` on). A node's
domain is the join of its inputs' (a fixed symbol or a coarse interval survives only when
every input has it); a cross-sectional node (``cs_*``, :mod:`dataflows.kernels.cross_section`)
reads and gives per-symbol values on the strategy's bars. Time-series kernels run over each
series of their domain; where a node reads an input of a narrower domain the input is aligned
*as of*: at each output time ``t`` the input's latest value at or before ``t`` (the value
carried from earlier batches when it has none in this one). So another symbol's or a coarser
interval's value is never seen before its bar closed.

:class:`PanelState` buffers the bars of every symbol it needs and evaluates a time only when
every one of them has reached it (the portfolio's rule, :mod:`dataflows.portfolio`), or at
the end of the stream: then no bar at or before that time can still arrive, the cross-section
of each time is final, and every computation is either a kernel (batch-invariant) or local to
one time, so any batching of the input gives the same output, live or replayed.

>>> from qmtl.core.expr import col
>>> from qmtl import cs
>>> prog = PanelProgram({"w": cs.rank(col("close"))}, ["A", "B"], "1d")
>>> st = PanelState(prog)
>>> one = lambda t, c: {"ts": np.array([t]), "close": np.array([c])}
>>> st.push("A", one(1, 5.0)); st.drain()
({}, {})
>>> st.push("B", one(1, 7.0)); out, bars = st.drain()
>>> out["w"]["A"][1].tolist(), out["w"]["B"][1].tolist()
([0.0], [1.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dataflows.graph import _carried_state
from dataflows.kernels import Kernel, make_kernel
from dataflows.kernels.cross_section import PANEL_OPS, panel_call
from dataflows.resample import Resampler
from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.expr import Expr
from qmtl.core.expr_nodes import own_lookback, walk
from qmtl.core.intervals import interval_ns

Domain = tuple[str | None, str | None]
"""(fixed symbol or None for each traded symbol, coarser interval or None)."""

BASE: Domain = (None, None)

Outputs = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]
"""Per output name, per traded symbol: ``(ts, values)`` over the symbol's own bars."""


def needs_panel(expr: Expr) -> bool:
    """Whether ``expr`` reads across symbols or intervals (and so needs this stage).

    >>> from qmtl.core.expr import col
    >>> from qmtl import cs
    >>> needs_panel(col("close").sma(3)), needs_panel(cs.rank(col("close")))
    (False, True)
    """
    for node in walk([expr]):
        if node.op in PANEL_OPS:
            return True
        if node.op == "col" and (node.params.get("symbol") or node.params.get("interval")):
            return True
        if node.op == "is_symbol":
            return True
    return False


def lookback_bars(expr: Expr, interval: str | None) -> int:
    """Bars of ``interval`` before ``expr`` has a value: :attr:`Expr.lookback`, with the
    warm-up of nodes on a coarser interval (``bars.at("1d")``) counted in ``interval`` bars.

    >>> from qmtl.core.expr import col
    >>> lookback_bars(col("close", interval="1h").sma(3), "15m"), col("close").sma(3).lookback
    (12, 2)
    """
    doms: dict[str, Domain | None] = {}
    lb: dict[str, int] = {}
    base = interval_ns(interval) if interval else 0
    for node in walk([expr]):
        doms[node.id] = dom = _domain(node, doms)
        ratio = interval_ns(dom[1]) // base if dom and dom[1] and base else 1
        own = own_lookback(node.op, node.params) * ratio
        if node.op == "col" and ratio > 1:
            own = ratio
        lb[node.id] = max((lb[i.id] for i in node.inputs), default=0) + own
    return lb[expr.id]


def _domain(node: Expr, doms: Mapping[str, Domain | None]) -> Domain | None:
    if node.op == "const":
        return None
    if node.op == "col":
        return (node.params.get("symbol"), node.params.get("interval"))
    if node.op in PANEL_OPS or node.op == "is_symbol":
        return BASE
    ins = [d for d in (doms[i.id] for i in node.inputs) if d is not None]
    if not ins:
        return BASE
    syms = {d[0] for d in ins}
    ivs = {d[1] for d in ins}
    return (syms.pop() if len(syms) == 1 else None, ivs.pop() if len(ivs) == 1 else None)


class PanelProgram:
    """The nodes of named outputs with their domains, for a universe of traded symbols.

    >>> from qmtl.core.expr import col
    >>> p = PanelProgram({"w": col("close", symbol="SPY") > 0}, ["A"], "1d")
    >>> p.symbols, p.needed, p.domains[p.outputs["w"].id]
    (['A'], ['A', 'SPY'], ('SPY', None))
    """

    def __init__(self, outputs: Mapping[str, Expr], symbols: Sequence[str],
                 interval: str | None) -> None:
        self.outputs = dict(outputs)
        self.symbols = sorted(set(symbols))
        if not self.symbols:
            raise ValueError("a cross-sectional program needs at least one traded symbol")
        self.interval = interval
        self.nodes: list[Expr] = list(walk(self.outputs.values()))
        self.domains: dict[str, Domain | None] = {}
        for node in self.nodes:
            self.domains[node.id] = _domain(node, self.domains)
        fixed = {d[0] for d in self.domains.values() if d is not None and d[0] is not None}
        self.needed = sorted(set(self.symbols) | fixed)
        self.intervals = sorted({d[1] for d in self.domains.values() if d and d[1]})
        if self.intervals and not interval:
            raise ValueError("at(...): the strategy's interval is needed to resample its bars")
        for iv in self.intervals:
            assert interval is not None
            if interval_ns(iv) <= interval_ns(interval) or interval_ns(iv) % interval_ns(interval):
                raise ValueError(f"bars.at({iv!r}): {iv} is not a coarser whole multiple of "
                                 f"the strategy's interval {interval}")
        self.columns = tuple(sorted({n.params["name"] for n in self.nodes if n.op == "col"}))
        # nodes whose values are read in another domain: their last values are carried
        self.carried: set[str] = set()
        for node in self.nodes:
            dst = BASE if node.op in PANEL_OPS else self.domains[node.id]
            for i in node.inputs:
                if self.domains[i.id] is not None and self.domains[i.id] != dst:
                    self.carried.add(i.id)
        for e in self.outputs.values():
            if self.domains[e.id] not in (None, BASE):
                self.carried.add(e.id)

    def owners(self, dom: Domain) -> list[str]:
        """The series of a domain: every traded symbol, or the one fixed symbol.

        >>> from qmtl.core.expr import col
        >>> PanelProgram({"w": col("close")}, ["B", "A"], None).owners((None, None))
        ['A', 'B']
        """
        return self.symbols if dom[0] is None else [dom[0]]


def _cut(batches: list[Batch], horizon: int) -> tuple[Batch | None, list[Batch]]:
    """The rows at or before ``horizon`` of buffered batches, and the rest."""
    if not batches:
        return None, []
    whole = batches[0] if len(batches) == 1 else {
        c: np.concatenate([b[c] for b in batches]) for c in batches[0]
    }
    k = int(np.searchsorted(whole["ts"], horizon, side="right"))
    if k == 0:
        return None, [whole]
    if k == len(whole["ts"]):
        return whole, []
    return {c: v[:k] for c, v in whole.items()}, [{c: v[k:] for c, v in whole.items()}]


class PanelState:
    """The evaluator of a :class:`PanelProgram`: buffers, resamplers, kernels and carried
    values (see the module docstring). :meth:`drain` returns, per output, per traded symbol,
    ``(ts, values)`` over the symbol's own bars.

    >>> from qmtl.core.expr import col
    >>> st = PanelState(PanelProgram({"w": col("close").shift(1)}, ["A"], None))
    >>> st.push("A", {"ts": np.array([1, 2]), "close": np.array([3.0, 4.0])})
    >>> st.drain()[0]["w"]["A"][1].tolist()
    [nan, 3.0]
    """

    def __init__(self, program: PanelProgram) -> None:
        self.program = program
        self.kernels: dict[tuple[str, str], Kernel] = {}
        self._make_kernels()
        self.resamplers: dict[tuple[str, str], Resampler] = {}
        for iv in program.intervals:
            for sym in program.needed:
                assert program.interval is not None
                self.resamplers[(sym, iv)] = Resampler(program.interval, iv)
        self.pending: dict[str, list[Batch]] = {s: [] for s in program.needed}
        self.reached: dict[str, int] = {}
        self.last: dict[tuple[str, str], float] = {}
        self.drained = np.iinfo(np.int64).min

    def _make_kernels(self) -> None:
        prog = self.program
        for node in prog.nodes:
            if node.op in ("col", "const", "is_symbol") or node.op in PANEL_OPS:
                continue
            dom = prog.domains[node.id] or BASE
            for owner in prog.owners(dom):
                self.kernels[(node.id, owner)] = make_kernel(node.op, node.params)

    # -- recovery: kernels' carried state without their configuration (see graph.py) -------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("program", None)
        if "_restored" not in state:
            state["_restored"] = {k: _carried_state(v) for k, v in self.kernels.items()}
        state["kernels"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.program = None  # type: ignore[assignment]

    @property
    def attached(self) -> bool:
        """False for a state restored from a snapshot until :meth:`attach` is called.

        >>> import pickle
        >>> from qmtl.core.expr import col
        >>> st = PanelState(PanelProgram({"w": col("close")}, ["A"], None))
        >>> st.attached, pickle.loads(pickle.dumps(st)).attached
        (True, False)
        """
        return self.program is not None

    def attach(self, program: PanelProgram) -> None:
        """Give a restored state its program back: fresh kernels, then the carried state.

        >>> import pickle
        >>> from qmtl.core.expr import col
        >>> prog = PanelProgram({"w": col("close").shift(1)}, ["A"], None)
        >>> st = PanelState(prog)
        >>> st.push("A", {"ts": np.array([1]), "close": np.array([3.0])}); _ = st.drain()
        >>> back = pickle.loads(pickle.dumps(st)); back.attach(prog)
        >>> back.push("A", {"ts": np.array([2]), "close": np.array([4.0])})
        >>> back.drain()[0]["w"]["A"][1].tolist()
        [3.0]
        """
        self.program = program
        self.kernels = {}
        self._make_kernels()
        for key, carried in self.__dict__.pop("_restored", {}).items():
            kernel = self.kernels.get(key)
            if kernel is None:
                raise ValueError(
                    f"recovery state has node {key[0]} that the program does not: the strategy "
                    "changed since the snapshot; start with a new recovery directory"
                )
            for name, value in carried.items():
                setattr(kernel, name, value)

    # -- input ------------------------------------------------------------------------------
    def push(self, symbol: str, bars: Batch) -> None:
        """Buffer a symbol's validated bars (in time order); other symbols are ignored.

        >>> from qmtl.core.expr import col
        >>> st = PanelState(PanelProgram({"w": col("close")}, ["A"], None))
        >>> st.push("Z", {"ts": np.array([1]), "close": np.ones(1)}); st.pending
        {'A': []}
        """
        if symbol not in self.pending or len(bars["ts"]) == 0:
            return
        self.pending[symbol].append(bars)
        self.reached[symbol] = int(bars["ts"][-1])

    def drain(self, final: bool = False) -> tuple[Outputs, dict[str, Batch | None]]:
        """Evaluate every buffered time that all needed symbols have reached (everything if
        ``final``); return the outputs and the bars evaluated per symbol (``({}, {})`` when
        nothing is complete yet)."""
        if final:
            horizon = int(np.iinfo(np.int64).max)
        elif len(self.reached) == len(self.pending):
            horizon = min(self.reached.values())
            if horizon <= self.drained:
                return {}, {}
            self.drained = horizon
        else:
            return {}, {}
        chunk: dict[str, Batch | None] = {}
        for sym, parts in self.pending.items():
            chunk[sym], self.pending[sym] = _cut(parts, horizon)
        if all(b is None for b in chunk.values()):
            return {}, {}
        if final:  # everything is in: the clock is at the last bar of any needed symbol
            horizon = max(int(b["ts"][-1]) for b in chunk.values() if b is not None)
        return self._evaluate(chunk, horizon), chunk

    # -- evaluation -------------------------------------------------------------------------
    def _series(self, chunk: Mapping[str, Batch | None], now: int
                ) -> dict[tuple[str, str | None], Batch]:
        """Each needed symbol's bars of the chunk, and its coarse bars closed by then: by a
        bar at or after their close, or by ``now`` (every needed symbol has reached it, so
        a bucket ending at or before it can get no more bars)."""
        cols = self.program.columns
        out: dict[tuple[str, str | None], Batch] = {}
        for sym in self.program.needed:
            b = chunk.get(sym)
            if b is None:
                b = {"ts": np.empty(0, dtype=np.int64), **{c: np.empty(0) for c in cols}}
            out[(sym, None)] = b
            for iv in self.program.intervals:
                r = self.resamplers[(sym, iv)]
                full = {c: b[c] if c in b else np.full(len(b["ts"]), np.nan)
                        for c in ("ts", *BAR_COLUMNS)}
                got = r.update(full)
                tail = r.advance(now)
                if len(tail["ts"]):
                    got = {c: np.concatenate([got[c], tail[c]]) for c in ("ts", *BAR_COLUMNS)}
                out[(sym, iv)] = got
        return out

    def _align(self, src_id: str, src_owner: str, values: np.ndarray, src_ts: np.ndarray,
               dst_ts: np.ndarray) -> np.ndarray:
        """``values`` (at ``src_ts``) as of each of ``dst_ts``: the latest at or before it,
        else the value carried from earlier chunks (NaN before the first)."""
        idx = np.searchsorted(src_ts, dst_ts, side="right") - 1
        carried = self.last.get((src_id, src_owner), np.nan)
        if len(values) == 0:
            return np.full(len(dst_ts), carried)
        return np.where(idx >= 0, values[np.maximum(idx, 0)], carried)

    def _evaluate(self, chunk: Mapping[str, Batch | None], now: int) -> Outputs:
        prog = self.program
        series = self._series(chunk, now)
        values: dict[str, Any] = {}
        panels: dict[str, np.ndarray] = {}  # cross-sectional nodes' values as panels
        layout: _Layout | None = None

        def ts_of(owner: str, dom: Domain) -> np.ndarray:
            return series[(owner, dom[1])]["ts"]

        def read(inp: Expr, dst: Domain, owner: str) -> np.ndarray:
            src = prog.domains[inp.id]
            n = len(ts_of(owner, dst))
            if src is None:
                return np.full(n, float(inp.params["value"])) if inp.op == "const" else \
                    np.full(n, np.nan)
            if src == dst:
                return values[inp.id][owner]
            src_owner = owner if src[0] is None else src[0]
            return self._align(inp.id, src_owner, values[inp.id][src_owner],
                               ts_of(src_owner, src), ts_of(owner, dst))

        for node in prog.nodes:
            dom = prog.domains[node.id]
            if dom is None:
                continue  # constants: read() expands them
            if node.op == "col":
                name = node.params["name"]
                values[node.id] = {o: np.asarray(series[(o, dom[1])][name], dtype=np.float64)
                                   for o in prog.owners(dom)}
            elif node.op == "is_symbol":
                me = node.params["symbol"]
                values[node.id] = {o: np.full(len(ts_of(o, BASE)), float(o == me))
                                   for o in prog.symbols}
            elif node.op in PANEL_OPS:
                if layout is None:
                    layout = _Layout({s: ts_of(s, BASE) for s in prog.symbols}, prog.symbols)
                src = node.inputs[0]
                if src.id in panels:  # a cross-section of a cross-section: already a panel
                    x = panels[src.id]
                else:
                    x = layout.stack({s: read(src, BASE, s) for s in prog.symbols})
                panels[node.id] = panel_call(node.op, x, node.params, prog.symbols)
                values[node.id] = layout.split(panels[node.id])
            else:
                values[node.id] = {
                    o: self.kernels[(node.id, o)].update(*(read(i, dom, o) for i in node.inputs))
                    for o in prog.owners(dom)
                }
        out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        for name, e in prog.outputs.items():
            out[name] = {s: (ts_of(s, BASE), read(e, BASE, s)) for s in prog.symbols}
        for nid in prog.carried:
            for owner, arr in values[nid].items():
                if len(arr):
                    self.last[(nid, owner)] = float(arr[-1])
        return out


class _Layout:
    """Where each traded symbol's bars of a chunk sit in the chunk's panel (time x symbol):
    the union of their times, or, when every symbol has the same times, just those."""

    def __init__(self, ts: Mapping[str, np.ndarray], symbols: list[str]) -> None:
        self.symbols = symbols
        first = ts[symbols[0]]
        self.aligned = all(len(ts[s]) == len(first) and np.array_equal(ts[s], first)
                           for s in symbols[1:])
        self.rows: dict[str, np.ndarray] = {}
        if self.aligned:
            self.n = len(first)
        else:
            timeline = np.unique(np.concatenate([ts[s] for s in symbols]))
            self.n = len(timeline)
            self.rows = {s: np.searchsorted(timeline, ts[s]) for s in symbols}

    def stack(self, per: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-symbol values as a panel (NaN where a symbol has no bar)."""
        if self.aligned:
            if self.n == 0:
                return np.empty((0, len(self.symbols)))
            return np.stack([per[s] for s in self.symbols], axis=1)
        panel = np.full((self.n, len(self.symbols)), np.nan)
        for j, s in enumerate(self.symbols):
            panel[self.rows[s], j] = per[s]
        return panel

    def split(self, panel: np.ndarray) -> dict[str, np.ndarray]:
        """A panel back to per-symbol values at each symbol's own bars."""
        if self.aligned:
            return {s: panel[:, j] for j, s in enumerate(self.symbols)}
        return {s: panel[self.rows[s], j] for j, s in enumerate(self.symbols)}
