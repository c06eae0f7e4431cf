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
    make_paper: Callable[[str], Broker] | None = None  # stage paper of a run without --paper
    publish: Callable[[list[OrderIntent], list[Fill]], None] = lambda _o, _f: None
    report: Callable[[str, list[OrderIntent], list[Fill]], None] = lambda *_: None
    clock: Callable[[], float] = time.monotonic
    # (strategy, verdict, symbol, ts, close) per bar row: qmtl.live.metrics, the run's summary
    on_verdict: Callable[[str, Verdict, str, int, float], None] | None = None
    # (strategy, symbol, ts, target weight, close) per bar row, whatever the gate decides:
    # the targets a world's book nets (qmtl.book_run.targets.TargetPoster)
    on_target: Callable[[str, str, int, float, float], None] | None = None
    # a shadow run: while the world does not trade the strategy (see traded), orders are
    # held and no target is published; it trades as any run once the world promotes it
    shadow: bool = False
    # strategies whose orders are held for now (a shared group's member whose lease this
    # runner lost, qmtl.live.group): computed with the others, no order and no target
    muted: Callable[[str], bool] | None = None


def traded(book: ActivationBook, strategy: str) -> bool:
    """Whether the world trades ``strategy`` now: its stage is paper or live, or, in a world
    that decides no stages, it is active.

    >>> b = ActivationBook("w"); traded(b, "s")
    False
    >>> row = {"strategy_id": "s", "active": True, "weight": 1.0, "stage": "paper"}
    >>> b.load_snapshot({"seq": 1, "stages": True, "strategies": [row]}, now=0.0)
    >>> traded(b, "s"), traded(b, "t")
    (True, False)
    """
    stage = book.stage(strategy)
    if stage is not None:
        return stage in ("paper", "live")
    act = book.get(strategy)
    return act is not None and act.active


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
        self.quiet: Broker | None = None  # the paper broker of the stage paper (see _venue)
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

    def _venue(self, strategy: str) -> str:
        """Where orders go now: ``paper`` (the paper broker), ``live`` (stored for the
        orders topic) or ``hold``. A world that decides stages decides it (``backtest``
        holds; a ``--paper`` run never sends real orders); otherwise the run's options do."""
        if self.ctx.shadow and not traded(self.ctx.book, strategy):
            return "hold"
        if self.ctx.muted is not None and self.ctx.muted(strategy):
            return "hold"
        stage = self.ctx.book.stage(strategy)
        if stage is None:
            return "paper" if self.ctx.make_broker is not None else "live"
        if stage == "backtest":
            return "hold"
        if stage == "paper" or self.ctx.make_broker is not None:
            return "paper" if (self.broker or self.ctx.make_paper) is not None else "hold"
        return "live"

    def _orders(self, out: StrategyOutput) -> list[Orders]:
        ctx, gate = self.ctx, self.gate
        assert gate is not None and out.batch is not None
        venue = self._venue(out.strategy)
        if gate.switch(venue):
            log.info(
                "%s: stage %s in world %r: orders go to %s",
                out.strategy,
                ctx.book.stage(out.strategy),
                ctx.world,
                venue,
            )
        if venue == "paper" and self.broker is None and self.quiet is None:
            assert ctx.make_paper is not None
            self.quiet = ctx.make_paper(out.strategy)
        taker = (self.broker or self.quiet) if venue == "paper" else None
        brokers = [b for b in (self.broker, self.quiet) if b is not None]
        muted = ctx.muted is not None and ctx.muted(out.strategy)
        shadow = (ctx.shadow and venue == "hold" and not traded(ctx.book, out.strategy)) or muted
        stage_hold = Verdict(
            "hold",
            cause="stage",
            reason=f"{out.strategy} is in stage "
            f"{ctx.book.stage(out.strategy)} in world "
            f"{ctx.world!r}: orders held" + (" (a shadow run)" if shadow else ""),
        )
        if muted:
            stage_hold = Verdict("hold", cause="stage", reason=f"{out.strategy}: this runner "
                                 "no longer holds its lease: orders held")
        rows = out.batch.symbol_rows
        names = out.batch.symbols
        intents: list[OrderIntent] = []
        fills: list[Fill] = []
        v: Verdict | None = None
        slips = rows.get("slip")  # the slippage of a fill at the row's bar (non-default
        for i in range(len(rows["ts"])):  # execution only: dataflows.execution)
            symbol, ts = names[int(rows["symbol"][i])], int(rows["ts"][i])
            slip = None if slips is None else float(slips[i])
            for b in brokers:  # open paper orders fill even after a switch to live
                fills += (b.on_bar(symbol, ts, float(rows["open"][i])) if slip is None
                          else b.on_bar(symbol, ts, float(rows["open"][i]), slip))
            v = (
                stage_hold
                if venue == "hold"
                else verdict(ctx.book, out.strategy, ctx.clock(), ctx.max_activation_age)
            )
            close = float(rows["close"][i])
            if ctx.on_verdict is not None:
                ctx.on_verdict(out.strategy, v, symbol, ts, close)
            if ctx.on_target is not None and not shadow:
                ctx.on_target(out.strategy, symbol, ts, float(rows["weight"][i]), close)
            new = gate.on_bar(symbol, ts, float(rows["weight"][i]), close, v)
            if new:
                intents += new
                if taker is not None:  # taken at once: the next bar, maybe in this batch,
                    taker.accept(new)  # fills it (rule close: this bar's close, below)
            for b in brokers:
                on_close = getattr(b, "on_close", None)
                if on_close is not None:
                    fills += on_close(symbol, ts, float(rows["close"][i]), slip)
        # one transaction per broker for the batch; keys the store has (a replay) come back
        # as not new. Only the run's own broker and real orders are published: the paper
        # fills of a run that follows its stage stay in its store.
        out_o: list[OrderIntent] = []
        out_f: list[Fill] = []
        pub_o: list[OrderIntent] = []
        pub_f: list[Fill] = []
        for b in brokers:
            o, f = b.flush()
            out_o, out_f = out_o + o, out_f + f
            if b is self.broker:
                pub_o, pub_f = pub_o + o, pub_f + f
        if taker is None and intents:
            recorded = ctx.record(intents)
            out_o, pub_o = out_o + recorded, pub_o + recorded
        if v is not None:
            self._say(out.strategy, v)
        if pub_o or pub_f:
            ctx.publish(pub_o, pub_f)
        if out_o or out_f:
            ctx.report(out.strategy, out_o, out_f)
            return [(out_o, out_f)]
        return []

    def _say(self, strategy: str, v: Verdict) -> None:
        """One log line each time what the gate does changes (and why)."""
        if v.kind == "hold":
            line = v.reason
        elif v.kind == "trade":
            line = (
                f"{strategy} is active in world {self.ctx.world!r} (weight {v.weight:.3g}): "
                "orders follow its targets"
            )
        else:
            line = f"{strategy} is inactive in world {self.ctx.world!r}: positions go flat"
        if line != self._said:
            (log.warning if v.kind == "hold" else log.info)("%s", line)
            self._said = line

    def snapshot(self) -> OrderGate | None:
        """The gate's state (a copy: Bytewax pickles it later)."""
        return snapshot_copy(self.gate)


def build_live_flow(
    spec: StrategySpec | list[StrategySpec],
    source: Source[Any],
    control: RunControl,
    on_output: Callable[[StrategyOutput], None],
    order_ctx: OrderContext,
    dlq_sink: Sink[Any],
    *,
    metrics_every: int = 1,
    emit_after: int | None = None,
    signals_from: int | None = None,
) -> Dataflow:
    """The live dataflow (see the module docstring); its core is the backtest's. ``spec``
    may be several strategies (a shared-feed group, :mod:`qmtl.live.group`): one program
    for all of them, a node they share computed once per symbol, one gate per strategy.

    ``signals_from`` (the first live bar time) makes bars before it warm the kernels up only,
    as a backtest's look-back before ``--start`` does: the portfolio starts flat at it.
    ``emit_after`` instead lets rows at or before it move the portfolio without emitting them.

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
        list(spec) if isinstance(spec, list) else [spec],
        control,
        on_bad="drop",
        metrics_every=metrics_every,
        emit_after=emit_after,
        prices=True,
        signals_from=signals_from,
    )
    op.output("report", results, CallbackSink(lambda kv: _report(on_output, control, kv[1])))
    orders = op.stateful("orders", results, lambda resume: OrderLogic(order_ctx, control, resume))
    op.inspect("orders_out", orders, lambda _step, _kv: None)
    op.output("dlq", op.map("dlq_record", routed.falses, lambda item: item[1]), dlq_sink)
    return flow


def _report(
    on_output: Callable[[StrategyOutput], None], control: RunControl, out: StrategyOutput
) -> None:
    """``on_output(out)``; an error (the run folder's disk is full...) stops the run with its
    own message, as a step's does (raised in a sink, Bytewax would panic instead).

    >>> c = RunControl()
    >>> _report(lambda out: 1 / 0, c, None); repr(c.error)
    "ZeroDivisionError('division by zero')"
    """
    if control.failed:
        return
    try:
        on_output(out)
    except Exception as exc:
        control.fail(exc)
