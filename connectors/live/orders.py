"""Orders that left the gate, fills, positions and the MetricsUpdates bound for the world,
kept in SQLite (default) or PostgreSQL, and a paper broker that fills orders.

The store is the run's memory across restarts. An order is recorded once under its
idempotency key (world/strategy/symbol/bar ts): a restarted flow that decides the same bar
again finds the key taken and sends nothing. Orders and fills are written before they are
published (outbox): :class:`OrderRelay` publishes what is not yet acknowledged to Kafka, so a
broker outage delays orders but loses and repeats none.

:class:`PaperBroker` fills an order at the open of the symbol's next bar, plus slippage
(against the trade) and a fee, bringing the position to the order's target quantity. A fill
and its position change are one transaction, keyed by the order, so replayed bars never fill
twice.

>>> import tempfile, os
>>> from qmtl.core.contracts import OrderIntent
>>> store = open_order_store(os.path.join(tempfile.mkdtemp(), "orders.db"))
>>> broker = PaperBroker(store, "w", "s", slippage_bps=10.0, fee_bps=1.0)
>>> o = OrderIntent(world="w", strategy_id="s", symbol="A", ts=1, target_weight=0.5,
...                 target_qty=50.0, reason="rebalance")
>>> [x.symbol for x in broker.submit([o])], broker.submit([o])   # the second is a repeat
(['A'], [])
>>> fill = broker.on_bar("A", ts=2, open_=10.0)[0]
>>> fill.qty, round(fill.price, 6), round(fill.fee, 6), broker.position("A")
(50.0, 10.01, 0.05005, 50.0)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent
from qmtl.core.db import (
    DatabaseUnavailable,
    PostgresBackend,
    SqlBackend,
    SqliteBackend,
    parse_db_url,
)

log = logging.getLogger("qmtl.orders")

_DDL = [
    """CREATE TABLE IF NOT EXISTS orders (
        id {serial}, key TEXT NOT NULL UNIQUE, world TEXT NOT NULL,
        strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
        target_weight DOUBLE PRECISION NOT NULL, target_qty DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, created BIGINT NOT NULL,
        filled INTEGER NOT NULL DEFAULT 0, published INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS fills (
        id {serial}, order_key TEXT NOT NULL UNIQUE, world TEXT NOT NULL,
        strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
        qty DOUBLE PRECISION NOT NULL, price DOUBLE PRECISION NOT NULL,
        fee DOUBLE PRECISION NOT NULL, created BIGINT NOT NULL DEFAULT 0,
        published INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS positions (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, symbol TEXT NOT NULL,
        qty DOUBLE PRECISION NOT NULL, PRIMARY KEY (world, strategy_id, symbol))""",
    """CREATE TABLE IF NOT EXISTS metric_updates (
        id {serial}, world TEXT NOT NULL, strategy_id TEXT NOT NULL, run_id TEXT NOT NULL,
        seq BIGINT NOT NULL, body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
        UNIQUE (world, strategy_id, run_id, seq))""",
]

_ORDER_COLS = "key, world, strategy_id, symbol, ts, target_weight, target_qty, reason"


class OrderStoreUnavailable(DatabaseUnavailable):
    """The order store cannot be reached; nothing was written."""


def intent_key(o: OrderIntent) -> str:
    """The idempotency key of an order (see :func:`qmtl.core.contracts.order_key`).

    >>> intent_key(OrderIntent(world="w", strategy_id="s", symbol="A", ts=3,
    ...                        target_weight=0.0, target_qty=0.0, reason="x"))
    'w/s/A/3'
    """
    from qmtl.core.contracts import order_key

    return order_key(o.world, o.strategy_id, o.symbol, o.ts)


def _intent(row: Any) -> OrderIntent:
    return OrderIntent(
        world=row[1],
        strategy_id=row[2],
        symbol=row[3],
        ts=int(row[4]),
        target_weight=float(row[5]),
        target_qty=float(row[6]),
        reason=row[7],
    )


class OrderStore(SqlBackend):
    """Orders, fills and positions (see the module docstring)."""

    ddl = _DDL
    unavailable = OrderStoreUnavailable

    def record(self, intents: Iterable[OrderIntent]) -> list[OrderIntent]:
        """Store each order under its key, in one transaction; return those that are new."""
        return self.write(intents, [])[0]

    def write(
        self,
        intents: Iterable[OrderIntent],
        fills: Iterable[tuple[str, Fill, str, str, float]],
    ) -> tuple[list[OrderIntent], list[Fill]]:
        """Orders, then fills ``(order key, fill, world, strategy, target position)`` with
        their position changes, in one transaction; return the orders and fills that are new
        (a key stored already is left as it is: a replayed decision or fill adds nothing)."""
        new_orders, new_fills = [], []
        now = time.time_ns()
        with self.transaction() as cur:
            for o in intents:
                self.execute(
                    cur,
                    f"INSERT INTO orders ({_ORDER_COLS}, created) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
                    [intent_key(o), o.world, o.strategy_id, o.symbol, o.ts, o.target_weight,
                     o.target_qty, o.reason, now],
                )
                if cur.rowcount == 1:
                    new_orders.append(o)
            for key, f, world, strategy_id, target in fills:
                self.execute(
                    cur,
                    "INSERT INTO fills (order_key, world, strategy_id, symbol, ts, qty, price, "
                    "fee, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (order_key) DO NOTHING",
                    [key, world, strategy_id, f.symbol, f.ts, f.qty, f.price, f.fee, now],
                )
                if cur.rowcount != 1:
                    continue
                new_fills.append(f)
                self.execute(cur, "UPDATE orders SET filled = 1 WHERE key = ?", [key])
                self.execute(
                    cur,
                    "INSERT INTO positions (world, strategy_id, symbol, qty) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (world, strategy_id, symbol) DO UPDATE SET qty = excluded.qty",
                    [world, strategy_id, f.symbol, target],
                )
        return new_orders, new_fills

    def positions(self, world: str, strategy_id: str) -> dict[str, float]:
        """Quantity held per symbol."""
        with self.transaction() as cur:
            rows = self.execute(
                cur,
                "SELECT symbol, qty FROM positions WHERE world = ? AND strategy_id = ?",
                [world, strategy_id],
            ).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def orders(
        self, world: str, strategy_id: str | None = None, open_only: bool = False
    ) -> list[OrderIntent]:
        """Orders in the order they were decided (optionally only those not filled)."""
        sql = f"SELECT {_ORDER_COLS} FROM orders WHERE world = ?"
        params: list[Any] = [world]
        if strategy_id is not None:
            sql += " AND strategy_id = ?"
            params.append(strategy_id)
        if open_only:
            sql += " AND filled = 0"
        with self.transaction() as cur:
            rows = self.execute(cur, sql + " ORDER BY id", params).fetchall()
        return [_intent(r) for r in rows]

    def fills(self, world: str, strategy_id: str | None = None) -> list[Fill]:
        """Fills in the order they happened."""
        sql = "SELECT order_key, symbol, ts, qty, price, fee FROM fills WHERE world = ?"
        params: list[Any] = [world]
        if strategy_id is not None:
            sql += " AND strategy_id = ?"
            params.append(strategy_id)
        with self.transaction() as cur:
            rows = self.execute(cur, sql + " ORDER BY id", params).fetchall()
        return [
            Fill(
                order_id=r[0],
                symbol=r[1],
                ts=int(r[2]),
                qty=float(r[3]),
                price=float(r[4]),
                fee=float(r[5]),
            )
            for r in rows
        ]

    def unpublished(
        self, table: str, limit: int = 1000, before: int | None = None
    ) -> list[tuple[int, str, str]]:
        """``(id, key, JSON)`` of orders or fills not yet published, oldest first (only those
        stored before ``before``, ns, when given)."""
        cutoff = " AND created < ?" if before is not None else ""
        params: list[Any] = ([before] if before is not None else []) + [limit]
        if table == "orders":
            sql = (f"SELECT id, {_ORDER_COLS} FROM orders WHERE published = 0{cutoff} "
                   "ORDER BY id LIMIT ?")
            with self.transaction() as cur:
                rows = self.execute(cur, sql, params).fetchall()
            return [(int(r[0]), r[1], _intent(r[1:]).model_dump_json()) for r in rows]
        sql = (
            "SELECT id, order_key, symbol, ts, qty, price, fee FROM fills "
            f"WHERE published = 0{cutoff} ORDER BY id LIMIT ?"
        )
        with self.transaction() as cur:
            rows = self.execute(cur, sql, params).fetchall()
        return [
            (
                int(r[0]),
                r[1],
                Fill(
                    order_id=r[1],
                    symbol=r[2],
                    ts=int(r[3]),
                    qty=float(r[4]),
                    price=float(r[5]),
                    fee=float(r[6]),
                ).model_dump_json(),
            )
            for r in rows
        ]

    def mark_published_keys(self, table: str, keys: list[str]) -> None:
        """Mark orders (by key) or fills (by order key) as acknowledged by Kafka."""
        assert table in ("orders", "fills")
        column = "key" if table == "orders" else "order_key"
        with self.transaction() as cur:
            cur.executemany(self._sql(f"UPDATE {table} SET published = 1 WHERE {column} = ?"),
                            [(k,) for k in keys])

    def queue_update(self, update: MetricsUpdate) -> bool:
        """Queue ``update`` for the world; False when its run has queued this seq or a later
        one already (a restarted flow emitting a stretch again)."""
        with self.transaction() as cur:
            row = self.execute(
                cur,
                "SELECT MAX(seq) FROM metric_updates WHERE world = ? AND strategy_id = ? "
                "AND run_id = ?",
                [update.world, update.strategy_id, update.run_id],
            ).fetchone()
            if row is not None and row[0] is not None and int(row[0]) >= update.seq:
                return False
            self.execute(
                cur,
                "INSERT INTO metric_updates (world, strategy_id, run_id, seq, body) "
                "VALUES (?, ?, ?, ?, ?)",
                [update.world, update.strategy_id, update.run_id, update.seq,
                 update.model_dump_json()],
            )
        return True

    def last_update(self, world: str, strategy_id: str, run_id: str) -> MetricsUpdate | None:
        """The latest MetricsUpdate queued for one run (sent or not), or None."""
        with self.transaction() as cur:
            row = self.execute(
                cur,
                "SELECT body FROM metric_updates WHERE world = ? AND strategy_id = ? "
                "AND run_id = ? ORDER BY seq DESC LIMIT 1",
                [world, strategy_id, run_id],
            ).fetchone()
        return None if row is None else MetricsUpdate.model_validate_json(row[0])

    def unsent_updates(self, world: str, limit: int = 500) -> list[tuple[int, str]]:
        """``(id, JSON)`` of queued updates not yet accepted by the world, oldest first."""
        with self.transaction() as cur:
            rows = self.execute(
                cur,
                "SELECT id, body FROM metric_updates WHERE world = ? AND sent = 0 ORDER BY id "
                "LIMIT ?",
                [world, limit],
            ).fetchall()
        return [(int(r[0]), r[1]) for r in rows]

    def mark_sent(self, ids: list[int]) -> None:
        """Mark queued updates as accepted by the world."""
        with self.transaction() as cur:
            for i in ids:
                self.execute(cur, "UPDATE metric_updates SET sent = 1 WHERE id = ?", [i])


class SqliteOrderStore(SqliteBackend, OrderStore):
    """The order store in a SQLite file."""


class PostgresOrderStore(PostgresBackend, OrderStore):
    """The order store in PostgreSQL."""


def default_order_store_url() -> str:
    """``~/.qmtl/orders.db``.

    >>> default_order_store_url().endswith("orders.db")
    True
    """
    return str(Path.home() / ".qmtl" / "orders.db")


def open_order_store(url: str | None = None) -> OrderStore:
    """An order store by URL: ``postgresql://...[?schema=s]``, ``sqlite:///path`` or a file
    path (default ``~/.qmtl/orders.db``)."""
    kind, target, schema = parse_db_url(url or default_order_store_url())
    if kind == "postgresql":
        return PostgresOrderStore(target, schema=schema)
    return SqliteOrderStore(target)


class PaperBroker:
    """Fills one strategy's orders at the next bar's open (see the module docstring). It
    works on a mirror of its open orders and positions in memory; :meth:`flush` writes what
    happened since the last flush to the store in one transaction."""

    def __init__(
        self,
        store: OrderStore,
        world: str,
        strategy_id: str,
        slippage_bps: float = 0.0,
        fee_bps: float = 0.0,
    ) -> None:
        if slippage_bps < 0 or fee_bps < 0:
            raise ValueError("slippage and fee must be >= 0 bp")
        self.store = store
        self.world, self.strategy_id = world, strategy_id
        self.slippage = slippage_bps / 1e4
        self.fee = fee_bps / 1e4
        self._positions = store.positions(world, strategy_id)
        self._open: dict[str, list[OrderIntent]] = {}
        for o in store.orders(world, strategy_id, open_only=True):
            self._open.setdefault(o.symbol, []).append(o)
        self._orders: list[OrderIntent] = []
        self._fills: list[tuple[str, Fill, str, str, float]] = []

    def position(self, symbol: str) -> float:
        """Quantity held."""
        return self._positions.get(symbol, 0.0)

    def accept(self, intents: list[OrderIntent]) -> None:
        """Take orders (stored at the next :meth:`flush`)."""
        for o in intents:
            self._open.setdefault(o.symbol, []).append(o)
        self._orders += intents

    def on_bar(self, symbol: str, ts: int, open_: float) -> list[Fill]:
        """Fill ``symbol``'s orders decided before ``ts`` at this bar's open."""
        waiting = self._open.get(symbol)
        if not waiting:
            return []
        fills, keep = [], []
        for o in waiting:
            if o.ts >= ts:
                keep.append(o)
                continue
            qty = o.target_qty - self.position(symbol)
            price = open_ * (1.0 + self.slippage * (1.0 if qty > 0 else -1.0 if qty < 0 else 0.0))
            key = intent_key(o)
            fill = Fill(order_id=key, symbol=symbol, ts=ts, qty=qty, price=price,
                        fee=abs(qty) * price * self.fee)
            self._fills.append((key, fill, self.world, self.strategy_id, o.target_qty))
            fills.append(fill)
            self._positions[symbol] = o.target_qty
        self._open[symbol] = keep
        return fills

    def flush(self) -> tuple[list[OrderIntent], list[Fill]]:
        """Store the orders and fills since the last flush; return those that are new (a
        restarted flow replaying bars repeats decisions and fills the store already has)."""
        if not self._orders and not self._fills:
            return [], []
        try:
            return self.store.write(self._orders, self._fills)
        finally:
            self._orders, self._fills = [], []

    def submit(self, intents: list[OrderIntent]) -> list[OrderIntent]:
        """Take orders and store them at once; return the new ones.

        >>> import tempfile, os
        >>> b = PaperBroker(open_order_store(os.path.join(tempfile.mkdtemp(), "o.db")), "w", "s")
        >>> o = OrderIntent(world="w", strategy_id="s", symbol="A", ts=1, target_weight=1.0,
        ...                 target_qty=2.0, reason="x")
        >>> len(b.submit([o])), b.submit([o])
        (1, [])
        """
        fresh = self.store.record(intents)
        for o in fresh:
            self._open.setdefault(o.symbol, []).append(o)
        return fresh


class OrderRelay:
    """Publishes stored orders and fills to Kafka after they are stored (outbox), in a thread
    of its own (:meth:`start`).

    The flow hands over what it has just committed (:meth:`send`), and the relay produces it
    at once, without waiting for the broker: acknowledgements arrive in the background and
    are marked in the store in batches. Anything the broker did not acknowledge (it was
    away), and anything stored before a restart, is found by a sweep of the store and sent
    again, so an outage delays orders but loses none. An order is a target keyed by its bar:
    a consumer applies it only if its ``ts`` is after the last one it applied for that
    strategy and symbol (a retried order may arrive after a newer one).
    """

    def __init__(
        self,
        store: OrderStore,
        brokers: str,
        orders_topic: str = "orders",
        fills_topic: str = "fills",
        interval: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        from confluent_kafka import Producer

        from connectors.live.feeds import ensure_topic, kafka_config

        self.store = store
        self.topics = {"orders": orders_topic, "fills": fills_topic}
        for topic in self.topics.values():  # one partition unless the operator made more
            ensure_topic(brokers, topic, timeout)
        self.interval = interval
        self.timeout = timeout
        self._producer = Producer(
            {
                **kafka_config(brokers, timeout),
                "acks": "all",
                "message.timeout.ms": int(timeout * 1000),
                "linger.ms": 0,
            }
        )
        self._queue: list[tuple[str, str, str]] = []  # (table, key, JSON) to produce
        self._inflight: set[tuple[str, str]] = set()
        self._acked: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self._failing: str | None = None

    def send(self, orders: list[OrderIntent], fills: list[Fill]) -> None:
        """Publish orders and fills the flow has just stored: handed to the Kafka client in
        the caller's thread (it does not wait for the broker; the relay's thread marks the
        acknowledgements)."""
        items = [("orders", intent_key(o), o.model_dump_json()) for o in orders]
        items += [("fills", f.order_id, f.model_dump_json()) for f in fills]
        if items:
            try:
                self._produce(items)
            except BufferError:  # the client's queue is full (broker away): the sweep sends
                with self._lock:
                    self._queue += items
            self._wake.set()

    def _delivered(self, err: Any, _msg: Any, item: tuple[str, str]) -> None:
        with self._lock:
            self._inflight.discard(item)
            if err is None:
                self._acked.append(item)
        if err is not None:
            if self._failing is None:
                log.warning("cannot publish to Kafka (%s); will retry", err)
            self._failing = str(err)

    def _produce(self, items: list[tuple[str, str, str]]) -> None:
        for table, key, body in items:
            item = (table, key)
            with self._lock:
                if item in self._inflight:
                    continue
                self._inflight.add(item)
            try:
                self._producer.produce(
                    self.topics[table], key=key.encode(), value=body.encode(),
                    on_delivery=lambda err, msg, it=item: self._delivered(err, msg, it),
                )
            except BufferError:
                with self._lock:
                    self._inflight.discard(item)
                raise

    def _settle(self) -> int:
        """Mark what the broker acknowledged as published; return how many."""
        with self._lock:
            acked, self._acked = self._acked, []
        for table in ("orders", "fills"):
            keys = [k for t, k in acked if t == table]
            if keys:
                self.store.mark_published_keys(table, keys)
        if acked and self._failing is not None:
            log.info("publishing to Kafka again")
            self._failing = None
        self.published += len(acked)
        return len(acked)

    def _sweep(self, everything: bool = False) -> None:
        """Send again what was stored a while ago (everything, when closing) and is neither
        acknowledged nor in flight (the broker was away, or it was stored before a restart)."""
        with self._lock:
            busy = self._inflight | set(self._acked)
        # younger ones are on their way (or failed a moment ago: the client retries them)
        before = None if everything else time.time_ns() - int(self.timeout * 1e9)
        for table in ("orders", "fills"):
            rows = self.store.unpublished(table, before=before)
            self._produce([(table, key, body) for _, key, body in rows
                           if (table, key) not in busy])

    def publish_once(self, wait: float = 0.0) -> int:
        """Produce what is queued, serve acknowledgements (up to ``wait`` s) and mark them;
        return how many were marked."""
        with self._lock:
            items, self._queue = self._queue, []
        if items:
            self._produce(items)
        self._producer.poll(wait)
        return self._settle()

    def _loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > self.interval:
                    last_sweep = time.monotonic()
                    self._settle()
                    self._sweep()
                self.publish_once()
            except Exception as exc:  # store or client trouble: retry on the next round
                log.warning("order relay: %s", exc)
            if self._wake.wait(0.005 if self._inflight else self.interval):
                self._wake.clear()

    def start(self) -> OrderRelay:
        """Run in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._loop, name="qmtl-order-relay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Publish what is left (best effort, up to the timeout) and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self._sweep(everything=True)
            deadline = time.monotonic() + self.timeout
            while self._inflight and time.monotonic() < deadline:
                self.publish_once(0.1)
            self.publish_once()
        except Exception as exc:
            log.warning("order relay: %s (left unpublished; sent on the next start)", exc)
