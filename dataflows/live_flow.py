"""The live dataflow: the backtest's core between a live source and the live sinks, and the
order step.

::

    source: ("bar", (symbol, batch)) or ("dlq", record) items
      -> route: bars to the core, bad messages to the dead-letter sink
      -> core: evaluate per symbol -> portfolio per strategy   (identical to the backtest)
      -> report: each engine output to ``on_output`` (the run folder, the world's metrics)
      -> orders: the gate (activation from the world, fails closed) -> the broker or the
                 order record (-> ``publish`` and ``report``)

The engine does no I/O of its own here: the source, the dead-letter sink, the broker and
the order record are passed in (:class:`OrderContext`) by the runner (``qmtl.live``).

>>> OrderContext(world="w", capital=1e6, book=ActivationBook("w"),
...              record=lambda intents: intents, max_activation_age=30.0).make_broker is None
True
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from dataflows.compiler import StrategyOutput, StrategySpec, build_core
from dataflows.control import RunControl
from dataflows.gate import ActivationBook, OrderGate, Verdict, verdict
from dataflows.recovery import snapshot_copy
from dataflows.replay import CallbackSink
from qmtl.core.contracts import Fill, OrderIntent

log = logging.getLogger("qmtl.live")

Orders = tuple[list[OrderIntent], list[Fill]]


class Broker(Protocol):
    """What the order step needs of a (paper) broker: fills at a bar's open, orders taken,
    and what is new since the last flush (stored in one transaction).

    >>> class NoFills:
    ...     def on_bar(self, symbol, ts, open_): return []
    ...     def accept(self, intents): pass
    ...     def flush(self): return [], []
    >>> ctx = OrderContext("w", 1.0, ActivationBook("w"), list, 30.0, lambda _s: NoFills())
    >>> ctx.make_broker("s").flush()
    ([], [])
    """

    def on_bar(self, symbol: str, ts: int, open_: float) -> list[Fill]:
        """Fills of ``symbol``'s open orders at this bar's open."""

    def accept(self, intents: list[OrderIntent]) -> None:
        """Take new orders (filled from the next bar)."""

    def flush(self) -> Orders:
        """Store what happened since the last flush; the orders and fills that are new."""


@dataclass
class OrderContext:
    """What the order step shares across strategies: the activation book, how orders are
    kept (``make_broker(strategy)`` for a paper broker, else ``record(intents)`` stores them
    and returns the new ones), and where to report orders and fills.

    >>> ctx = OrderContext("w", 1e6, ActivationBook("w"), record=list, max_activation_age=30.0)
    >>> ctx.capital, ctx.make_broker
    (1000000.0, None)
    """

    world: str
    capital: float
    book: ActivationBook
    record: Callable[[list[OrderIntent]], list[OrderIntent]]
    max_activation_age: float
    make_broker: Callable[[str], Broker] | None = None
    publish: Callable[[list[OrderIntent], list[Fill]], None] = lambda _o, _f: None
    report: Callable[[str, list[OrderIntent], list[Fill]], None] = lambda *_: None
    clock: Callable[[], float] = time.monotonic
    on_verdict: Callable[[str, Verdict], None] | None = None  # e.g. qmtl.live.metrics


class OrderLogic(op.StatefulLogic[StrategyOutput, Orders, Any]):
    """One strategy's gate and (paper) broker; its state is the gate's, the broker's lives in
    the order store.

    >>> ctx = OrderContext("w", 1000.0, ActivationBook("w"), lambda i: i, 30.0)
    >>> OrderLogic(ctx, RunControl(), None).snapshot() is None
    True
    """

    def __init__(self, ctx: OrderContext, control: RunControl, resume: OrderGate | None) -> None:
        self.ctx = ctx
        self.control = control
        self.gate = resume
        self.broker: Broker | None = None
        self._said: str | None = None

    def _setup(self, strategy: str) -> None:
        if self.gate is None:
            self.gate = OrderGate(self.ctx.world, strategy, self.ctx.capital)
        if self.ctx.make_broker is not None:
            self.broker = self.ctx.make_broker(strategy)

    def on_item(self, out: StrategyOutput) -> tuple[Iterable[Orders], bool]:
        """Orders (and paper fills) for one engine output; an error stops the run."""
        if self.control.failed or out.batch is None:
            return [], self.RETAIN
        try:
            if self.gate is None or (self.ctx.make_broker is not None and self.broker is None):
                self._setup(out.strategy)
            return self._orders(out), self.RETAIN
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN

    def _orders(self, out: StrategyOutput) -> list[Orders]:
        ctx, gate, broker = self.ctx, self.gate, self.broker
        assert gate is not None and out.batch is not None
        rows = out.batch.symbol_rows
        names = out.batch.symbols
        intents: list[OrderIntent] = []
        fills: list[Fill] = []
        v: Verdict | None = None
        for i in range(len(rows["ts"])):
            symbol, ts = names[int(rows["symbol"][i])], int(rows["ts"][i])
            if broker is not None:
                fills += broker.on_bar(symbol, ts, float(rows["open"][i]))
            v = verdict(ctx.book, out.strategy, ctx.clock(), ctx.max_activation_age)
            if ctx.on_verdict is not None:
                ctx.on_verdict(out.strategy, v)
            new = gate.on_bar(symbol, ts, float(rows["weight"][i]), float(rows["close"][i]), v)
            if new:
                intents += new
                if broker is not None:  # taken at once: the next bar, maybe in this batch,
                    broker.accept(new)  # fills it
        # one transaction for the batch; keys the store has (a replay) come back as not new
        if broker is not None:
            intents, fills = broker.flush()
        elif intents:
            intents = ctx.record(intents)
        if v is not None:
            self._say(out.strategy, v)
        if intents or fills:
            ctx.publish(intents, fills)
            ctx.report(out.strategy, intents, fills)
            return [(intents, fills)]
        return []

    def _say(self, strategy: str, v: Verdict) -> None:
        """One log line each time what the gate does changes (and why)."""
        if v.kind == "hold":
            line = v.reason
        elif v.kind == "trade":
            line = (f"{strategy} is active in world {self.ctx.world!r} (weight {v.weight:.3g}): "
                    "orders follow its targets")
        else:
            line = f"{strategy} is inactive in world {self.ctx.world!r}: positions go flat"
        if line != self._said:
            (log.warning if v.kind == "hold" else log.info)("%s", line)
            self._said = line

    def snapshot(self) -> OrderGate | None:
        """The gate's state (a copy: Bytewax pickles it later)."""
        return snapshot_copy(self.gate)


def build_live_flow(
    spec: StrategySpec,
    source: Source[Any],
    control: RunControl,
    on_output: Callable[[StrategyOutput], None],
    order_ctx: OrderContext,
    dlq_sink: Sink[Any],
    *,
    metrics_every: int = 1,
    emit_after: int | None = None,
) -> Dataflow:
    """The live dataflow (see the module docstring); its core is the backtest's.

    Three daily bars of an always-long strategy, active in its world: one order, sized
    ``capital x weight / close``:

    >>> import numpy as np
    >>> from bytewax.testing import TestingSource, run_main
    >>> from qmtl.core.expr import col
    >>> book = ActivationBook("w")
    >>> book.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 1}, 0.0)
    >>> spec = StrategySpec("s", ["A"], col("close") > 0, 0.0, 1.0, 252.0)
    >>> bars = {"ts": np.arange(1, 4) * 86_400 * 10**9, "volume": np.ones(3),
    ...         **{c: np.full(3, 10.0) for c in ("open", "high", "low", "close")}}
    >>> got = []
    >>> ctx = OrderContext("w", 1000.0, book, record=lambda i: i, max_activation_age=60.0,
    ...                    report=lambda _s, o, _f: got.extend(o), clock=lambda: 0.0)
    >>> source = TestingSource([("bar", ("A", bars)), ("dlq", {"reason": "bad"})])
    >>> run_main(build_live_flow(spec, source, RunControl(), lambda _out: None, ctx,
    ...                          CallbackSink(lambda r: print("dead letter:", r["reason"]))))
    dead letter: bad
    >>> [(o.symbol, o.target_qty) for o in got]
    [('A', 100.0)]
    """
    flow = Dataflow("qmtl")
    items = op.input("bars", flow, source)
    routed = op.branch("route", items, lambda item: item[0] == "bar")
    bars = op.map("unwrap", routed.trues, lambda item: item[1])
    results = build_core(
        bars,
        [spec],
        control,
        on_bad="drop",
        metrics_every=metrics_every,
        emit_after=emit_after,
        prices=True,
    )
    op.output("report", results, CallbackSink(lambda kv: on_output(kv[1])))
    orders = op.stateful("orders", results, lambda resume: OrderLogic(order_ctx, control, resume))
    op.inspect("orders_out", orders, lambda _step, _kv: None)
    op.output("dlq", op.map("dlq_record", routed.falses, lambda item: item[1]), dlq_sink)
    return flow
