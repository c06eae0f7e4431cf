"""``run_live``: a strategy on a live feed, from options to result (see :mod:`qmtl.live`).

It checks the options, decides the hand-off from history, opens the links (the world, the
order store, the Kafka relay), builds the flow (:func:`dataflows.live_flow.build_live_flow`)
and runs it with Bytewax recovery until the feed ends, a limit or a signal.

>>> tally = OrderTally()
>>> tally("s", ["o1", "o2"], ["f1"]); (tally.orders, tally.fills)
(2, 1)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig
from bytewax.testing import cluster_main, run_main

from connectors.data.seamless import SeamlessDataProvider
from connectors.live.feeds import ensure_topic, kafka_config
from connectors.live.order_relay import OrderRelay
from connectors.live.order_store import OrderStore, open_order_store
from connectors.live.paper_broker import PaperBroker
from connectors.live.questdb_sink import RunSink
from connectors.live.source import LiveBarSource, LiveInput, LiveStats
from connectors.live.world_link import (
    ActivationSubscriber,
    MetricsPoster,
    WorldUnavailable,
    world_info,
)
from dataflows.compiler import StrategySpec, spec_lookback
from dataflows.control import RunControl
from dataflows.gate import ActivationBook
from dataflows.live_flow import OrderContext, build_live_flow, traded
from dataflows.recovery import RecoveryMismatch, recovery_config
from qmtl.book_run.targets import TargetPoster
from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent
from qmtl.core.errors import QmtlError
from qmtl.core.intervals import interval_ns
from qmtl.core.times import parse_time
from qmtl.live.embedded_world import embedded_world
from qmtl.live.handoff import gap_filler, hand_off, open_feed
from qmtl.live.metrics import LiveMetrics
from qmtl.live.options import LiveError, LiveOptions, LiveResult
from qmtl.live.report import GateLedger, RunReport, paper_account
from qmtl.live.start import (
    _check,
    feed_assembler,
    feed_calendars,
    first_live,
    warmup_bars,
    world_refused,
)
from qmtl.runner import make_strategy, to_spec
from qmtl.strategy import Strategy, default_strategy_id

log = logging.getLogger("qmtl.live")

OrderReport = Callable[[str, list[OrderIntent], list[Fill]], None]


class OrderTally:
    """Counts the orders and fills a run adds to its store (the order step reports only
    new ones: keys the store already holds come back as not new), passing them on to
    ``then`` (e.g. the console printer). Called from every worker, so it locks.

    >>> seen = []
    >>> tally = OrderTally(lambda s, o, f: seen.append(s)); tally("s", ["o"], [])
    >>> tally.orders, tally.fills, seen
    (1, 0, ['s'])
    """

    def __init__(self, then: OrderReport | None = None) -> None:
        self.orders = 0
        self.fills = 0
        self._then = then
        self._lock = threading.Lock()

    def __call__(self, strategy: str, intents: list[Any], fills: list[Any]) -> None:
        with self._lock:
            self.orders += len(intents)
            self.fills += len(fills)
        if self._then is not None:
            self._then(strategy, intents, fills)


@dataclass
class _Links:
    """A live run's connections besides the feed: its world (capital, activation, metrics),
    its order store and, with Kafka, the relay of orders and fills."""

    capital: float
    store: OrderStore
    book: ActivationBook
    poster: MetricsPoster
    relay: OrderRelay | None
    targets: TargetPoster | None = None


def _open_links(o: LiveOptions, url: str, state_dir: Path, stack: contextlib.ExitStack) -> _Links:
    """Connect to the world at ``url`` and open the order store (and the relay); ``stack``
    closes them."""
    try:
        info = world_info(url, o.token, o.world)
    except WorldUnavailable as exc:
        raise LiveError(world_refused(exc, o.world, url)) from None
    store = open_order_store(o.orders_store or str(state_dir / "orders.db"))
    stack.callback(store.close)
    book = ActivationBook(o.world)
    heartbeat = max(0.2, min(5.0, o.max_activation_age / 5))
    subscriber = ActivationSubscriber(book, url, o.token, heartbeat=heartbeat).start()
    stack.callback(subscriber.close)
    # the world answered world_info: its first bars follow its activation, not 'connecting'
    if not subscriber.wait_connected(o.connect_timeout):
        log.warning("world %s has not sent its activation within %.0f s: orders held until it "
                    "does", o.world, o.connect_timeout)
    poster = MetricsPoster(store, url, o.token, o.world).start()
    relay = None
    if o.brokers:
        relay = OrderRelay(store, o.brokers, o.orders_topic, o.fills_topic).start()
        stack.callback(relay.close)
    targets = None
    if o.brokers and o.targets_topic:  # the world's book nets them (qmtl world book-run)
        from confluent_kafka import Producer

        ensure_topic(o.brokers, o.targets_topic)
        producer = Producer({**kafka_config(o.brokers, 10.0), "linger.ms": 5})
        stack.callback(producer.flush, 10.0)
        targets = TargetPoster(producer, o.world, o.targets_topic)
    return _Links(float(info["capital"]), store, book, poster, relay, targets)


def _order_context(
    o: LiveOptions,
    links: _Links,
    report: OrderReport,
    spec: StrategySpec,
    watch: LiveMetrics | None = None,
    ledger: GateLedger | None = None,
) -> OrderContext:
    """The order step's links: the paper broker on the store, or the store's record of
    orders for the relay to send."""
    store = links.store

    def paper_broker(strategy: str, quiet: bool = False) -> PaperBroker:
        # the strategy's execution rule and costs: its fills are the backtest's trades
        return PaperBroker(store, o.world, strategy, fee_bps=spec.cost_bps, quiet=quiet,
                           execution=spec.execution)

    def stage_paper(strategy: str) -> PaperBroker:  # the world's stage paper, without --paper
        return paper_broker(strategy, quiet=True)

    return OrderContext(
        world=o.world,
        capital=links.capital,
        book=links.book,
        record=store.record,
        max_activation_age=o.max_activation_age,
        make_broker=paper_broker if o.paper else None,
        make_paper=None if o.paper else stage_paper,
        publish=links.relay.send if links.relay is not None else (lambda _o, _f: None),
        report=report,
        on_verdict=_fan_out([w.on_verdict for w in (watch, ledger) if w is not None]),
        on_target=links.targets,
        shadow=o.shadow,
    )


def _fan_out(calls: list[Callable[..., None]]) -> Callable[..., None] | None:
    """One callback calling each of ``calls`` (None when there are none).

    >>> seen = []; _fan_out([seen.append, seen.append])(1); seen
    [1, 1]
    """
    if not calls:
        return None
    if len(calls) == 1:
        return calls[0]

    def each(*args: Any) -> None:
        for call in calls:
            call(*args)

    return each


def _serve_metrics(o: LiveOptions, watch: LiveMetrics, stack: contextlib.ExitStack) -> None:
    """Serve the run's metrics on ``o.metrics_host:o.metrics_port`` until the run ends."""
    try:
        stack.callback(watch.serve(o.metrics_port or 0, o.metrics_host))
    except OSError as exc:
        raise LiveError(
            f"--metrics-port {o.metrics_port}: cannot serve metrics on "
            f"{o.metrics_host}:{o.metrics_port}: {exc}"
        ) from None
    log.info("metrics on http://%s:%d/metrics", o.metrics_host, watch.port)


def sink_run(conf: str, result: LiveResult) -> None:
    """Write the run's bars, returns and fills to QuestDB over ILP (``--sink``)."""
    sink = RunSink(conf)
    try:
        n = sink.write(result.strategy, result.run_id, result.bars, result.ts, result.returns,
                       result.equity, result.fills)
    except QmtlError as exc:
        raise LiveError(f"--sink: {exc}") from None
    finally:
        sink.close()
    log.info("wrote %s to QuestDB", ", ".join(f"{v} rows to {k}" for k, v in n.items()))


def run_live(
    strategy: type[Strategy] | Strategy,
    options: LiveOptions,
    *,
    params: dict[str, Any] | None = None,
    on_order: OrderReport | None = None,
    on_started: Callable[[dict[str, Any]], None] | None = None,
    control: RunControl | None = None,
    stats: LiveStats | None = None,
) -> LiveResult:
    """Run ``strategy`` (a class, or a strategy object such as ``qmtl.alpha(...)`` or
    ``qmtl.from_spec(...)``) live (see :mod:`qmtl.live`) until the feed ends, ``max_bars``,
    ``stop_after_idle`` or a signal (SIGINT/SIGTERM stop it cleanly). ``on_order`` sees
    each batch of new orders and fills, ``on_started`` the run's identity once it starts;
    ``control`` stops it from another thread (``control.stop()``: ``qmtl world run``) and
    ``stats`` shows its input counters while it runs.

    >>> run_live(Strategy, LiveOptions())
    Traceback (most recent call last):
    ...
    qmtl.live.options.LiveError: --mode live without --paper sends real orders ...
    """
    o = options
    _check(o)
    s = make_strategy(strategy, params or {})
    if o.cost_bps is not None:
        s.cost_bps = float(o.cost_bps)
    if o.fee_bps is not None:  # the paper broker's fee is the strategy's cost per turnover
        s.cost_bps = float(o.fee_bps)
    if o.slippage_bps is not None:  # slippage against the trade: half the spread
        s.spread_bps = 2.0 * float(o.slippage_bps)
    universe = list(o.symbols or s.symbols)
    if not universe:
        raise LiveError(f"{s.name} has no symbols: set `symbols = [...]` or pass --symbols")
    sid = o.strategy_id or default_strategy_id(s)
    spec = to_spec(s, universe, o.periods_per_year, key=sid)
    lookback = spec_lookback(spec)
    feed_symbols = universe + list(spec.context)  # context symbols are read, never traded
    n_warm = warmup_bars(o.warmup, s.warmup, lookback)
    if n_warm < 0:
        raise LiveError(f"--warmup must be >= 0, got {n_warm}")
    mode = "paper" if o.paper else "live"
    state_dir = Path(o.recovery_dir or o.out or Path.home() / ".qmtl")
    state_dir.mkdir(parents=True, exist_ok=True)
    data = (
        o.data
        if isinstance(o.data, SeamlessDataProvider)
        else (SeamlessDataProvider.from_env(o.data, origin=o.origin))
    )
    start_ns = parse_time(o.start) if isinstance(o.start, str) else o.start
    end_ns = parse_time(o.end) if isinstance(o.end, str) else o.end

    source_name = o.source or (
        f"kafka:{o.brokers}/{o.topic}" if o.brokers else f"catalog:{data.catalog.root}")
    fresh = {
        "run_id": uuid.uuid4().hex[:12],
        "strategy": sid,
        "symbols": universe,
        "interval": s.interval,
        "world": o.world,
        "source": source_name,
        "params": {k: getattr(s, k) for k in type(s).parameters()},
    }
    try:
        start = hand_off(o, data, feed_symbols, s.interval, n_warm, start_ns, fresh)
    except RecoveryMismatch as exc:
        raise LiveError(str(exc)) from None
    meta, resuming = start.meta, start.resuming
    run_id = meta["run_id"]
    signals_from = first_live(meta.get("split"), start.ends)
    make_feed, dlq_sink = open_feed(
        o,
        data,
        feed_symbols,
        s.interval,
        meta.get("split"),
        end_ns,
        group=o.group or f"qmtl-{o.world}-{sid}",
        ends=start.ends,
    )

    control = control if control is not None else RunControl()
    stats = stats if stats is not None else LiveStats()
    stats.feed = feed_assembler(o, s.interval)
    spec_in = LiveInput(
        symbols=feed_symbols,
        interval_ns=interval_ns(s.interval),
        history=start.history,
        history_end=start.ends,
        fill_gap=gap_filler(data, s.interval),
        max_gap_bars=o.max_gap_bars,
        calendars=feed_calendars(spec.calendar, start.history),
        start=start_ns if o.brokers or o.source else None,
        max_bars=o.max_bars,
        stop_after_idle=o.stop_after_idle,
        assembler=stats.feed,
    )
    source = LiveBarSource(make_feed, spec_in, control, stats)

    with contextlib.ExitStack() as stack:
        url = o.url or stack.enter_context(embedded_world(o, state_dir))
        links = _open_links(o, url, state_dir, stack)
        store, poster = links.store, links.poster
        head = {
            "strategy": sid,
            "params": meta.get("params", fresh["params"]),
            "symbols": universe,
            "interval": s.interval,
            "mode": mode,
            "world": o.world,
            "run_id": run_id,
        }

        def queue(update: MetricsUpdate) -> None:
            # a world that decides stages keeps records per mode: the update goes in the
            # record of the stage the run trades in now (a --paper run never in live)
            stage = links.book.stage(sid)
            if o.shadow and not traded(links.book, sid):  # a shadow run's forward record
                update = update.model_copy(update={"mode": "shadow"})
            elif stage is not None:
                mode_now = "paper" if o.paper and stage == "live" else stage
                update = update.model_copy(update={"mode": mode_now})
            if store.queue_update(update):
                poster.notify()

        last = store.last_update(o.world, sid, run_id) if resuming else None
        report = RunReport(head, universe, o.out, queue, resuming, last_update=last)
        tally = OrderTally(on_order)
        watch = None
        if o.metrics_port is not None:  # the run's own /metrics (qmtl/live/metrics.py)
            watch = LiveMetrics(
                stats,
                tally,
                poster,
                {k: str(head[k]) for k in ("strategy", "run_id", "world", "mode")},
            )
            _serve_metrics(o, watch, stack)
        ledger = GateLedger()
        ctx = _order_context(o, links, tally, spec, watch, ledger)
        flow = build_live_flow(
            spec,
            source,
            control,
            watch.watch(report.on_output) if watch is not None else report.on_output,
            ctx,
            dlq_sink,
            metrics_every=o.metrics_every,
            signals_from=signals_from,
        )
        recovery = recovery_config(o.recovery_dir, resuming)
        if on_started is not None:
            on_started(
                {
                    "run_id": run_id,
                    "mode": mode,
                    "world": o.world,
                    "url": url,
                    "resuming": resuming,
                    "warmup_bars": sum(len(b["ts"]) for b in start.history.values()),
                    "source": source_name,
                    "metrics_port": watch.port if watch is not None else None,
                }
            )
        # a bar's order crosses threads (flow -> relay); with the default 5 ms GIL switch
        # interval each crossing may wait that long for the interpreter
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        stack.callback(sys.setswitchinterval, switch)
        with _stop_on_signals(control):
            try:
                _run_flow(flow, o, recovery)
            finally:
                stats.finished = time.monotonic()
                poster.close()
        if control.error is not None:
            raise control.error
        report.finish(
            {
                "run": {
                    "live_bars": stats.live_bars,
                    "warmup_bars": stats.warmup_bars,
                    "overlap": stats.overlap,
                    "gap_filled": stats.gap_filled,
                    "dead_letters": stats.dead_letters,
                    "dead_letters_by_reason": stats.by_reason,
                    "metrics_posted": poster.posted,
                    "new_orders": tally.orders,
                    "new_fills": tally.fills,
                }
            }
        )
        series = report.portfolio()
        fills = store.fills(o.world, sid)
        positions = {k: v for k, v in store.positions(o.world, sid).items() if v != 0.0}
        paper = None
        if (o.paper or fills) and all(k in ledger.marks for k in positions):
            # the fixed part of the slippage the fills paid (half the spread; the
            # volatility-scaled part is in the account's return, not in this figure)
            half_spread = spec.execution.spread_bps / 2.0
            paper = paper_account(fills, links.capital, ledger.marks, half_spread)
        result = LiveResult(
            strategy=sid,
            run_id=run_id,
            mode=mode,
            world=o.world,
            stats=stats,
            metrics=report.metrics,
            n_bars=report.n_bars,
            ts=series["ts"].copy(),
            returns=series["return"].copy(),
            equity=series["equity"].copy(),
            bars=report.table(),
            orders=store.orders(o.world, sid),
            fills=fills,
            positions=positions,
            out=o.out,
            updates=report.updates,
            new_orders=tally.orders,
            new_fills=tally.fills,
            capital=links.capital,
            paper=paper,
            gate_bars=ledger.bars,
            held_bars=ledger.held(),
            held_by_cause=ledger.by_cause(),
            bars_before_active=ledger.before_active(),
        )
    if o.sink:
        sink_run(o.sink, result)
    return result


def _run_flow(flow: Dataflow, o: LiveOptions, recovery: RecoveryConfig | None) -> None:
    """Run ``flow`` on ``o.workers`` workers, snapshotting every ``o.snapshot_interval`` s."""
    epoch = dt.timedelta(seconds=o.snapshot_interval)
    if o.workers == 1:
        run_main(flow, epoch_interval=epoch, recovery_config=recovery)
    else:
        cluster_main(
            flow,
            [],
            0,
            epoch_interval=epoch,
            recovery_config=recovery,
            worker_count_per_proc=o.workers,
        )


@contextlib.contextmanager
def _stop_on_signals(control: RunControl) -> Iterator[None]:
    """SIGINT and SIGTERM end the feed cleanly (in the main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping after the bars in flight", signum)
        control.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
