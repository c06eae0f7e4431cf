"""``qmtl run --mode live``: the backtest's compiled graph, fed one bar at a time.

The flow is the backtest's core (:func:`dataflows.compiler.build_core`: the same steps and
node ids) between a live source and live sinks::

    live source: warm-up on history, then the feed (Kafka topic, or the catalog in process)
      -> route: bars to the core, bad messages to <topic>.dlq
      -> core: evaluate per symbol -> portfolio per strategy   (identical to the backtest)
      -> report: per-bar rows and metrics.json in --out, MetricsUpdates to the world
      -> orders: the gate (activation from the world, fails closed) -> order store
                 (-> paper broker fills at the next open) -> Kafka orders/fills topics

With ``--recovery-dir`` the flow snapshots its state (Bytewax recovery) with the feed's
offsets; a killed run restarted with the same directory resumes from its last snapshot.
What it emits again after a restart is deduplicated where it lands: the world ignores a
MetricsUpdate seq it has seen, the order store an order key it holds, the run folder rows it
has written. Without ``--brokers`` the feed is the catalog replayed in process at
``--speed``; without ``--url`` the world is served in process from a SQLite file, so a new
user can watch a paper run with nothing else started.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import json
import logging
import math
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bytewax.operators as op
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from bytewax.dataflow import Dataflow

from connectors.live.source import LiveBarSource, LiveInput, LiveStats, history_tail
from dataflows.compiler import StrategyOutput, StrategySpec, build_core
from dataflows.control import RunControl
from dataflows.gate import ActivationBook, OrderGate, verdict
from dataflows.replay import CallbackSink
from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent
from qmtl.core.errors import QmtlError
from qmtl.core.intervals import interval_ns
from qmtl.core.times import format_ts
from qmtl.strategy import Strategy

log = logging.getLogger("qmtl.live")

META_FILE = "qmtl-live.json"


class LiveError(QmtlError, RuntimeError):
    """A live run cannot start or continue (the text says why and what to do)."""


@dataclass
class LiveOptions:
    """Everything a live run can be told (the CLI's options, with the same defaults)."""

    brokers: str | None = None
    topic: str = "bars"
    group: str | None = None
    world: str = "local"
    url: str | None = None
    token: str | None = None
    paper: bool = False
    data: Any = None
    symbols: list[str] | None = None
    start: str | int | None = None
    end: str | int | None = None
    cost_bps: float | None = None
    strategy_id: str | None = None
    warmup: int | None = None
    speed: str = "10/s"
    max_bars: int | None = None
    stop_after_idle: float | None = None
    recovery_dir: Path | None = None
    snapshot_interval: float = 1.0
    out: Path | None = None
    orders_store: str | None = None
    orders_topic: str = "orders"
    fills_topic: str = "fills"
    max_activation_age: float = 30.0
    slippage_bps: float = 0.0
    fee_bps: float = 0.0
    metrics_every: int = 1
    max_gap_bars: int = 0
    workers: int = 1
    periods_per_year: float | None = None
    policy: str | None = None
    world_store: str | None = None
    origin: str | None = None
    connect_timeout: float = 5.0
    fetch_wait_ms: int = 5


@dataclass
class LiveResult:
    """What a live run did."""

    strategy: str
    run_id: str
    mode: str
    world: str
    stats: LiveStats
    metrics: dict[str, float]
    n_bars: int
    ts: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    bars: pa.Table
    orders: list[OrderIntent]
    fills: list[Fill]
    positions: dict[str, float]
    out: Path | None = None
    updates: list[MetricsUpdate] = field(default_factory=list)


# -- the run folder and the world's metrics ---------------------------------------------------


_ROW = np.dtype([("ts", "<i8"), ("symbol", "<i4"), ("weight", "<f8"), ("return", "<f8"),
                 ("equity", "<f8")])
_SERIES = np.dtype([("ts", "<i8"), ("return", "<f8"), ("equity", "<f8")])


class _Log:
    """Records of a fixed dtype, kept in memory and, with a ``path``, appended to a file: each
    write reaches the OS before the step returns, so rows a snapshot covers survive a killed
    process (a torn last record is cut when the file is read back)."""

    def __init__(self, path: Path | None, dtype: np.dtype, resume: bool) -> None:
        self.dtype = dtype
        self.parts: list[np.ndarray] = []
        self._file = None
        if path is None:
            return
        if resume and path.is_file():
            raw = path.read_bytes()
            whole = len(raw) // dtype.itemsize * dtype.itemsize
            if whole:
                self.parts.append(np.frombuffer(raw[:whole], dtype).copy())
            if whole != len(raw):
                with path.open("r+b") as f:
                    f.truncate(whole)
        elif path.exists():
            path.unlink()
        self._file = path.open("ab")

    def append(self, records: np.ndarray) -> None:
        if self._file is not None:
            self._file.write(records.tobytes())
            self._file.flush()
        self.parts.append(records)

    def all(self) -> np.ndarray:
        if len(self.parts) > 1:
            self.parts = [np.concatenate(self.parts)]
        return self.parts[0] if self.parts else np.empty(0, self.dtype)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class RunReport:
    """What a live run reports, kept consistent with its recovery snapshots: per-symbol rows
    and the portfolio series go to append-only logs in ``--out`` (and from them to
    ``bars.parquet``, as a backtest writes it, every ``write_every`` seconds and at the end),
    metrics to ``metrics.json``, and each metrics snapshot becomes a MetricsUpdate queued in
    the run's store for the world. Everything is written before the step returns, so a
    snapshot never covers output that is not written (``metrics.json`` lags, but a resumed
    run takes its metrics from the last update queued in the store); rows at or before the
    last one logged are not written again (a restarted flow re-emits what followed its
    snapshot)."""

    def __init__(
        self,
        head: dict[str, Any],
        symbols: list[str],
        out: Path | None,
        queue: Callable[[MetricsUpdate], None] | None,
        resume: bool,
        write_every: float = 1.0,
        last_update: MetricsUpdate | None = None,
    ) -> None:
        self.head = head
        self.symbols = sorted(set(symbols))
        self.out = out
        self.queue = queue
        self.write_every = write_every
        self.metrics: dict[str, float] = {}
        self.n_bars = 0
        self.updates: list[MetricsUpdate] = []
        self.extra: dict[str, Any] = {}
        self._written = time.monotonic()
        self._dirty = False
        self._lock = threading.Lock()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            doc = out / "metrics.json"
            if resume and doc.is_file():
                prior = json.loads(doc.read_text())
                self.metrics = {
                    k: (math.nan if v is None else v) for k, v in prior.get("metrics", {}).items()
                }
                self.n_bars = int(prior.get("n_bars", 0))
        if resume and last_update is not None and last_update.n_bars > self.n_bars:
            # metrics.json is rewritten every ``write_every`` seconds, but each update is
            # queued in the store before the step returns: a run killed in between resumes
            # with the metrics its snapshot covers (in the update's wire form: a NaN is 0.0)
            self.metrics = dict(last_update.metrics)
            self.n_bars = last_update.n_bars
        self.rows = _Log(out / ".rows.bin" if out else None, _ROW, resume)
        self.series = _Log(out / ".series.bin" if out else None, _SERIES, resume)
        done = self.series.all()
        self.last_ts: int | None = int(done["ts"][-1]) if len(done) else None
        if len(done) > self.n_bars:
            self.n_bars = len(done)

    def on_output(self, out: StrategyOutput) -> None:
        """Take one engine output (on whichever worker produced it)."""
        with self._lock:
            batch = out.batch
            if batch is not None and self.last_ts is not None:
                batch = batch.after(self.last_ts)
            if batch is not None:
                r = batch.symbol_rows
                rows = np.empty(len(r["ts"]), _ROW)
                rows["ts"], rows["symbol"] = r["ts"], r["symbol"]
                rows["weight"], rows["return"], rows["equity"] = r["weight"], r["return"], r[
                    "equity"
                ]
                series = np.empty(len(batch), _SERIES)
                series["ts"], series["return"], series["equity"] = (
                    batch.ts, batch.returns, batch.equity,
                )
                self.rows.append(rows)
                self.series.append(series)
                self.last_ts = int(batch.ts[-1])
                self._dirty = True
            if out.metrics is not None:
                self.metrics = dict(out.metrics)
                self.n_bars = out.n_bars
                self._dirty = True
                update = self._update(out)
                self.updates.append(update)
                if self.queue is not None:
                    self.queue(update)
            if self.out is not None and self._dirty and (
                time.monotonic() - self._written > self.write_every
            ):
                self._write()

    def _update(self, out: StrategyOutput) -> MetricsUpdate:
        from dataflows.metrics import finite

        returns = [] if out.returns_since is None else [float(x) for x in out.returns_since]
        return MetricsUpdate(
            world=self.head["world"],
            strategy_id=self.head["strategy"],
            run_id=self.head["run_id"],
            seq=out.seq,
            mode=self.head["mode"],
            as_of=out.as_of,
            n_bars=out.n_bars,
            metrics={k: finite(v) for k, v in out.metrics.items()} if out.metrics else {},
            returns=returns,
        )

    def table(self) -> pa.Table:
        """Every per-symbol row so far (ts, symbol, weight, return, equity)."""
        rows = self.rows.all()
        names = pa.DictionaryArray.from_arrays(
            pa.array(rows["symbol"], pa.int32()), pa.array(self.symbols)
        )
        return pa.table({
            "ts": pa.array(rows["ts"], pa.int64()),
            "symbol": names,
            "weight": rows["weight"],
            "return": rows["return"],
            "equity": rows["equity"],
        })

    def portfolio(self) -> np.ndarray:
        """The portfolio series so far (ts, return, equity)."""
        return self.series.all()

    def _write(self) -> None:
        assert self.out is not None
        table = self.table()
        tmp = self.out / ".bars.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(self.out / "bars.parquet")
        ts = table.column("ts")
        doc = {
            **self.head,
            "start": ts[0].as_py() if len(ts) else None,
            "end": ts[-1].as_py() if len(ts) else None,
            "n_bars": self.n_bars,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            **self.extra,
        }
        tmp_doc = self.out / ".metrics.json.tmp"
        tmp_doc.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp_doc.replace(self.out / "metrics.json")
        self._written = time.monotonic()
        self._dirty = False

    def finish(self, extra: dict[str, Any]) -> None:
        """Write the final files."""
        with self._lock:
            self.extra = extra
            if self.out is not None:
                self._write()
            self.rows.close()
            self.series.close()


# -- the order step ---------------------------------------------------------------------------


@dataclass
class OrderContext:
    """What the order step shares across strategies: the activation book, the store (and so
    the paper broker), the relay to wake, and where to report orders and fills."""

    world: str
    capital: float
    book: ActivationBook
    store: Any
    paper: bool
    max_activation_age: float
    slippage_bps: float = 0.0
    fee_bps: float = 0.0
    publish: Callable[[list[OrderIntent], list[Fill]], None] = lambda _o, _f: None
    report: Callable[[str, list[OrderIntent], list[Fill]], None] = lambda *_: None
    clock: Callable[[], float] = time.monotonic


class _OrderLogic(op.StatefulLogic[StrategyOutput, tuple[list[OrderIntent], list[Fill]], Any]):
    """One strategy's gate and (paper) broker; its state is the gate's, the broker's lives in
    the order store."""

    def __init__(self, ctx: OrderContext, control: RunControl, resume: OrderGate | None) -> None:
        self.ctx = ctx
        self.control = control
        self.gate = resume
        self.broker: Any = None
        self._said: str | None = None

    def _setup(self, strategy: str) -> None:
        from connectors.live.paper_broker import PaperBroker

        if self.gate is None:
            self.gate = OrderGate(self.ctx.world, strategy, self.ctx.capital)
        if self.ctx.paper:
            self.broker = PaperBroker(
                self.ctx.store, self.ctx.world, strategy, self.ctx.slippage_bps, self.ctx.fee_bps
            )

    def on_item(self, out: StrategyOutput) -> tuple[Iterable[Any], bool]:
        if self.control.failed or out.batch is None:
            return [], self.RETAIN
        try:
            if self.gate is None or (self.ctx.paper and self.broker is None):
                self._setup(out.strategy)
            return self._orders(out), self.RETAIN
        except Exception as exc:
            self.control.fail(exc)
            return [], self.RETAIN

    def _orders(self, out: StrategyOutput) -> list[tuple[list[OrderIntent], list[Fill]]]:
        ctx, gate, broker = self.ctx, self.gate, self.broker
        assert gate is not None and out.batch is not None
        rows = out.batch.symbol_rows
        names = out.batch.symbols
        intents: list[OrderIntent] = []
        fills: list[Fill] = []
        for i in range(len(rows["ts"])):
            symbol, ts = names[int(rows["symbol"][i])], int(rows["ts"][i])
            if broker is not None:
                fills += broker.on_bar(symbol, ts, float(rows["open"][i]))
            v = verdict(ctx.book, out.strategy, ctx.clock(), ctx.max_activation_age)
            new = gate.on_bar(symbol, ts, float(rows["weight"][i]), float(rows["close"][i]), v)
            if new:
                intents += new
                if broker is not None:  # taken at once: the next bar, maybe in this batch,
                    broker.accept(new)  # fills it
        # one transaction for the batch; keys the store has (a replay) come back as not new
        if broker is not None:
            intents, fills = broker.flush()
        elif intents:
            intents = ctx.store.record(intents)
        if len(rows["ts"]):
            self._say(out.strategy, v)
        if intents or fills:
            ctx.publish(intents, fills)
            ctx.report(out.strategy, intents, fills)
            return [(intents, fills)]
        return []

    def _say(self, strategy: str, v: Any) -> None:
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
        return copy.deepcopy(self.gate)


# -- history and hand-off ------------------------------------------------------------------


def _history(
    data: Any,
    symbols: list[str],
    interval: str,
    n: int,
    end: int,
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int]]:
    """The last ``n`` bars of each symbol at or before ``end`` from the data provider (which
    backfills what the catalog lacks when an origin is configured), and each symbol's last
    bar time."""
    from connectors.data.seamless import DataNotFound
    from qmtl.sources import last_bars

    history, ends, missing = {}, {}, []
    if n == 0:
        return history, ends
    for s in symbols:
        try:
            tail = last_bars(data, s, interval, end, n)
        except DataNotFound:
            missing.append(s)
            continue
        if len(tail["ts"]):
            history[s] = tail
            ends[s] = int(tail["ts"][-1])
        else:
            missing.append(s)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        log.warning("no %s history for %s before %s: warming up on live bars", interval, shown,
                    format_ts(end))
    return history, ends


def _embedded_split(
    data: Any, symbols: list[str], interval: str, n: int, start: int | None
) -> int | None:
    """Where the in-process feed starts: before ``start``, or after each symbol's first ``n``
    bars (the latest of those times), so warm-up and feed do not overlap."""
    from connectors.data.seamless import DataNotFound

    if start is not None:
        return start - 1
    if n == 0:
        return None
    split = None
    for s in symbols:
        try:
            ts = data.read(s, interval)["ts"]
        except DataNotFound as exc:
            raise LiveError(str(exc)) from None
        if len(ts):
            t = int(ts[min(n, len(ts)) - 1])
            split = t if split is None else max(split, t)
    return split


def _gap_filler(data: Any, interval: str) -> Callable[[str, int, int], Any]:
    def fill(symbol: str, after: int, before: int) -> Any:
        try:
            return data.read(symbol, interval, after + 1, before - 1)
        except LookupError:
            return None

    return fill


def _hand_off(
    o: LiveOptions,
    data: Any,
    universe: list[str],
    interval: str,
    n_warm: int,
    start: int | None,
    fresh: dict[str, Any],
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, int], dict[str, Any], bool]:
    """The warm-up history, each symbol's history end, the run's identity and whether it
    resumes: a new run decides the hand-off (history up to now or ``--start`` on Kafka; up to
    the feed's start in process) and records it in the recovery folder; a resumed run keeps
    the hand-off it decided when it started."""
    now = time.time_ns()
    meta = _resumed_meta(o.recovery_dir, fresh)
    if meta is not None:  # the hand-off decided when the run started
        split = meta.get("split")
        ends = {k: int(v) for k, v in meta["history_end"].items()}
        end = int(split) if split is not None else max(ends.values(), default=now)
        history, _ = _history(data, universe, interval, n_warm, end)
        history = {k: history_tail(v, n_warm, before=ends[k]) for k, v in history.items()
                   if k in ends}
        return history, ends, meta, True
    if o.brokers:  # history up to now, or up to --start (where the live bars begin)
        split = start - 1 if start is not None else None
    else:
        split = _embedded_split(data, universe, interval, n_warm, start)
    history, ends = _history(data, universe, interval, n_warm, split if split else now)
    meta = {**fresh, "split": split, "history_end": ends}
    if o.recovery_dir is not None:
        o.recovery_dir.mkdir(parents=True, exist_ok=True)
        tmp = o.recovery_dir / (META_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
        tmp.replace(o.recovery_dir / META_FILE)
    resuming = False
    return history, ends, meta, resuming


def _feed(
    o: LiveOptions,
    data: Any,
    universe: list[str],
    interval: str,
    split: int | None,
    end: int | None,
    group: str,
) -> tuple[Callable[[dict[int, int] | None], Any], Any]:
    """How the live source opens its feed (at resumed positions), and the dead-letter sink:
    the Kafka topic and ``<topic>.dlq``, or the catalog replayed in process from ``split``
    (dead letters logged)."""
    from connectors.live.feeds import CatalogFeed, FeedError, KafkaFeed, ensure_topic
    from connectors.live.kafka_io import JsonKafkaSink, topic_dlq

    if o.brokers:
        brokers = o.brokers
        try:
            ensure_topic(brokers, o.topic, o.connect_timeout)
        except FeedError as exc:
            raise LiveError(str(exc)) from None

        def make_kafka(positions: dict[int, int] | None) -> Any:
            return KafkaFeed(brokers, o.topic, group, positions, fetch_wait_ms=o.fetch_wait_ms)

        return make_kafka, JsonKafkaSink(brokers, topic_dlq(o.topic), lambda r: r.get("key"))

    def make_catalog(positions: dict[int, int] | None) -> Any:
        after = None if split is None else int(split) + 1
        return CatalogFeed.from_catalog(data, universe, interval, after, end, o.speed,
                                        (positions or {}).get(0, 0))

    return make_catalog, _LogSink()


# -- running ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _embedded_world(options: LiveOptions, state_dir: Path) -> Iterator[str]:
    """Serve a world in process (SQLite) on a free port; create ``options.world`` in it."""
    import socket

    import uvicorn

    from world_api.service.app import create_app
    from world_api.service.store import Conflict, WorldInfo

    store_path = options.world_store or str(state_dir / "local-world.db")
    world_log = logging.getLogger("qmtl.world")
    level = world_log.level
    world_log.setLevel(logging.ERROR)  # its "insecure dev mode" warning: it is local and ours
    try:
        app = create_app(store_path, insecure_dev=True)
    finally:
        world_log.setLevel(level)
    store = app.state.service.store
    with contextlib.suppress(Conflict):
        store.create_world(WorldInfo(id=options.world, name="embedded"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="qmtl-embedded-world", daemon=True)
    thread.start()
    deadline = time.time() + 15
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise LiveError("the embedded world service did not start")
        time.sleep(0.02)
    url = f"http://127.0.0.1:{port}"
    log.info("embedded world %r served at %s (store %s)", options.world, url, store_path)
    try:
        if options.policy:
            from world_api.client import WorldServiceClient, WorldServiceError

            client = WorldServiceClient(url)
            try:
                client.call(
                    "PUT",
                    f"/worlds/{options.world}/policy",
                    content=Path(options.policy).read_text(),
                )
            except (OSError, WorldServiceError) as exc:
                raise LiveError(f"--policy {options.policy}: {exc}") from None
            finally:
                client.close()
        yield url
    finally:
        server.should_exit = True
        thread.join(10)


def _resumed_meta(recovery_dir: Path | None, fresh: dict[str, Any]) -> dict[str, Any] | None:
    """The identity of the run ``recovery_dir`` holds (checked against this one's), or None
    for a new run."""
    path = None if recovery_dir is None else recovery_dir / META_FILE
    if path is None or not path.is_file():
        return None
    meta = json.loads(path.read_text())
    for k in ("strategy", "symbols", "interval", "world", "source"):
        if meta.get(k) != fresh.get(k):
            raise LiveError(
                f"--recovery-dir {recovery_dir} holds another run ({k}: {meta.get(k)!r}, "
                f"this run: {fresh.get(k)!r}); use a new directory to start afresh"
            )
    return meta


def _recovery(recovery_dir: Path | None, resuming: bool) -> Any:
    if recovery_dir is None:
        return None
    from bytewax.recovery import RecoveryConfig, init_db_dir

    if not any(recovery_dir.glob("part-*.sqlite3")):
        if resuming:
            log.warning("recovery dir %s has no snapshots yet: starting over", recovery_dir)
        init_db_dir(recovery_dir, 1)
    return RecoveryConfig(recovery_dir)


def build_live_flow(
    spec: StrategySpec,
    source: LiveBarSource,
    control: RunControl,
    on_output: Callable[[StrategyOutput], None],
    order_ctx: OrderContext,
    dlq_sink: Any,
    *,
    metrics_every: int = 1,
    emit_after: int | None = None,
) -> Dataflow:
    """The live dataflow (see the module docstring); its core is the backtest's."""
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
    orders = op.stateful("orders", results, lambda resume: _OrderLogic(order_ctx, control, resume))
    op.inspect("orders_out", orders, lambda _step, _kv: None)
    op.output("dlq", op.map("dlq_record", routed.falses, lambda item: item[1]), dlq_sink)
    return flow


class _LogSink(CallbackSink):
    """Dead letters when there is no Kafka: counted and logged by the source already."""

    def __init__(self) -> None:
        super().__init__(lambda _record: None)


def run_live(
    strategy: type[Strategy] | Strategy,
    options: LiveOptions,
    *,
    params: dict[str, Any] | None = None,
    on_order: Callable[[str, list[OrderIntent], list[Fill]], None] | None = None,
    on_started: Callable[[dict[str, Any]], None] | None = None,
) -> LiveResult:
    """Run ``strategy`` live (see the module docstring) until the feed ends, ``max_bars``,
    ``stop_after_idle`` or a signal (SIGINT/SIGTERM stop it cleanly)."""
    from bytewax.testing import cluster_main, run_main

    from connectors.data.quality import Calendar
    from connectors.data.seamless import SeamlessDataProvider
    from connectors.live.order_relay import OrderRelay
    from connectors.live.order_store import open_order_store
    from connectors.live.world_link import (
        ActivationSubscriber,
        MetricsPoster,
        WorldUnavailable,
        world_info,
    )
    from dataflows.graph import Program
    from qmtl.core.times import parse_time
    from qmtl.runner import make_strategy, to_spec

    o = options
    if not o.paper and o.brokers is None:
        raise LiveError(
            "--mode live without --paper sends real orders to the orders topic: give "
            "--brokers, or add --paper to fill them on the paper broker"
        )
    if o.max_bars is not None and o.max_bars < 1:
        raise LiveError(f"--max-bars must be >= 1, got {o.max_bars}")
    if o.workers < 1:
        raise LiveError(f"--workers must be >= 1, got {o.workers}")
    s = make_strategy(strategy, params or {})
    if o.cost_bps is not None:
        s.cost_bps = float(o.cost_bps)
    universe = list(o.symbols or s.symbols)
    if not universe:
        raise LiveError(f"{s.name} has no symbols: set `symbols = [...]` or pass --symbols")
    sid = o.strategy_id or s.name
    spec = to_spec(s, universe, o.periods_per_year, key=sid)
    lookback = Program({sid: spec.weight}).lookback
    n_warm = o.warmup if o.warmup is not None else lookback + 1
    if n_warm < 0:
        raise LiveError(f"--warmup must be >= 0, got {n_warm}")
    mode = "paper" if o.paper else "live"
    state_dir = Path(o.recovery_dir or o.out or Path.home() / ".qmtl")
    state_dir.mkdir(parents=True, exist_ok=True)
    data = o.data if isinstance(o.data, SeamlessDataProvider) else (
        SeamlessDataProvider.from_env(o.data, origin=o.origin))
    start_ns = parse_time(o.start) if isinstance(o.start, str) else o.start
    end_ns = parse_time(o.end) if isinstance(o.end, str) else o.end

    source_name = (f"kafka:{o.brokers}/{o.topic}" if o.brokers
                   else f"catalog:{data.catalog.root}")
    fresh = {
        "run_id": uuid.uuid4().hex[:12],
        "strategy": sid,
        "symbols": universe,
        "interval": s.interval,
        "world": o.world,
        "source": source_name,
        "params": {k: getattr(s, k) for k in type(s).parameters()},
    }
    history, ends, meta, resuming = _hand_off(o, data, universe, s.interval, n_warm, start_ns,
                                              fresh)
    run_id = meta["run_id"]
    emit_after = max(ends.values()) if ends else None
    make_feed, dlq_sink = _feed(o, data, universe, s.interval, meta.get("split"), end_ns,
                                group=o.group or f"qmtl-{o.world}-{sid}")

    control = RunControl()
    stats = LiveStats()
    spec_in = LiveInput(
        symbols=universe,
        interval_ns=interval_ns(s.interval),
        history=history,
        history_end=ends,
        fill_gap=_gap_filler(data, s.interval),
        max_gap_bars=o.max_gap_bars,
        calendars={k: Calendar().resolve(v["ts"]) for k, v in history.items()},
        start=start_ns if o.brokers else None,
        max_bars=o.max_bars,
        stop_after_idle=o.stop_after_idle,
    )
    source = LiveBarSource(make_feed, spec_in, control, stats)

    with contextlib.ExitStack() as stack:
        url = o.url or stack.enter_context(_embedded_world(o, state_dir))
        try:
            info = world_info(url, o.token, o.world)
        except WorldUnavailable as exc:
            raise LiveError(f"world {o.world!r}: {exc}") from None
        store = open_order_store(o.orders_store or str(state_dir / "orders.db"))
        stack.callback(store.close)
        book = ActivationBook(o.world)
        heartbeat = max(0.2, min(5.0, o.max_activation_age / 5))
        subscriber = ActivationSubscriber(book, url, o.token, heartbeat=heartbeat).start()
        stack.callback(subscriber.close)
        poster = MetricsPoster(store, url, o.token, o.world).start()
        relay = None
        if o.brokers:
            relay = OrderRelay(store, o.brokers, o.orders_topic, o.fills_topic).start()
            stack.callback(relay.close)
        head = {"strategy": sid, "params": meta.get("params", fresh["params"]),
                "symbols": universe, "interval": s.interval, "mode": mode, "world": o.world,
                "run_id": run_id}

        def queue(update: MetricsUpdate) -> None:
            if store.queue_update(update):
                poster.notify()

        last = store.last_update(o.world, sid, run_id) if resuming else None
        report = RunReport(head, universe, o.out, queue, resuming, last_update=last)

        ctx = OrderContext(
            world=o.world,
            capital=float(info["capital"]),
            book=book,
            store=store,
            paper=o.paper,
            max_activation_age=o.max_activation_age,
            slippage_bps=o.slippage_bps,
            fee_bps=o.fee_bps,
            publish=relay.send if relay is not None else (lambda _o, _f: None),
            report=on_order or (lambda *_: None),
        )
        flow = build_live_flow(
            spec,
            source,
            control,
            report.on_output,
            ctx,
            dlq_sink,
            metrics_every=o.metrics_every,
            emit_after=emit_after,
        )
        recovery = _recovery(o.recovery_dir, resuming)
        epoch = dt.timedelta(seconds=o.snapshot_interval)
        if on_started is not None:
            on_started(
                {
                    "run_id": run_id,
                    "mode": mode,
                    "world": o.world,
                    "url": url,
                    "resuming": resuming,
                    "warmup_bars": sum(len(b["ts"]) for b in history.values()),
                    "source": source_name,
                }
            )
        # a bar's order crosses threads (flow -> relay); with the default 5 ms GIL switch
        # interval each crossing may wait that long for the interpreter
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        stack.callback(sys.setswitchinterval, switch)
        with _stop_on_signals(control):
            try:
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
                }
            }
        )
        series = report.portfolio()
        return LiveResult(
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
            fills=store.fills(o.world, sid),
            positions={k: v for k, v in store.positions(o.world, sid).items() if v != 0.0},
            out=o.out,
            updates=report.updates,
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
