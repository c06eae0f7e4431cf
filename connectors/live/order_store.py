"""Orders that left the gate, fills, positions and the MetricsUpdates bound for the world,
kept in SQLite (default) or PostgreSQL: the live run's memory across restarts.

An order is recorded once under its idempotency key (world/strategy/symbol/bar ts): a
restarted flow that decides the same bar again finds the key taken and sends nothing. Orders
and fills are written before they are published (outbox): the relay
(:class:`connectors.live.order_relay.OrderRelay`) publishes what is not yet acknowledged, so
a broker outage delays orders but loses and repeats none. Opening the store brings its schema
to the latest migration (``connectors/live/migrations``).

>>> import tempfile, os
>>> store = open_order_store(os.path.join(tempfile.mkdtemp(), "orders.db"))
>>> o = OrderIntent(world="w", strategy_id="s", symbol="A", ts=1, target_weight=0.5,
...                 target_qty=50.0, reason="rebalance")
>>> [x.symbol for x in store.record([o])], store.record([o])   # the second is a repeat
(['A'], [])
>>> [key for _, key, _ in store.unpublished("orders")]
['w/s/A/1']
>>> store.close()
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Row, bindparam, func, insert, select, update

from connectors.live import order_tables as t
from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent, order_key
from qmtl.core.db import Database, DatabaseUnavailable, MigratedStore

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_orders"

_o = t.orders.c
_f = t.fills.c
_ORDER_COLS = (_o.key, _o.world, _o.strategy_id, _o.symbol, _o.ts, _o.target_weight,
               _o.target_qty, _o.reason)
_FILL_COLS = (_f.order_key, _f.symbol, _f.ts, _f.qty, _f.price, _f.fee)
_OUTBOX = {"orders": (t.orders, _o.key), "fills": (t.fills, _f.order_key)}
_p = t.positions.c
_m = t.metric_updates.c
# statements built once: SQLAlchemy then reuses their compiled form
_MARK_FILLED = update(t.orders).where(_o.key == bindparam("k")).values(filled=1)
_POSITIONS = select(_p.symbol, _p.qty).where(_p.world == bindparam("world"),
                                            _p.strategy_id == bindparam("strategy_id"))
_RUN = (_m.world == bindparam("world"), _m.strategy_id == bindparam("strategy_id"),
        _m.run_id == bindparam("run_id"))
_LAST_SEQ = select(func.max(_m.seq)).where(*_RUN)
_LAST_UPDATE = select(_m.body).where(*_RUN).order_by(_m.seq.desc()).limit(1)
_QUEUE_UPDATE = insert(t.metric_updates)
_UNSENT = (select(_m.id, _m.body).where(_m.world == bindparam("world"), _m.sent == 0)
           .order_by(_m.id).limit(bindparam("limit")))
_MARK_SENT = update(t.metric_updates).where(_m.id == bindparam("i")).values(sent=1)


class OrderStoreUnavailable(DatabaseUnavailable):
    """The order store cannot be reached; nothing was written."""


def intent_key(o: OrderIntent) -> str:
    """The idempotency key of an order (see :func:`qmtl.core.contracts.order_key`).

    >>> intent_key(OrderIntent(world="w", strategy_id="s", symbol="A", ts=3,
    ...                        target_weight=0.0, target_qty=0.0, reason="x"))
    'w/s/A/3'
    """
    return order_key(o.world, o.strategy_id, o.symbol, o.ts)


def _intent(row: Sequence[Any]) -> OrderIntent:
    """An order from a row of :data:`_ORDER_COLS` (the key first)."""
    return OrderIntent(
        world=row[1],
        strategy_id=row[2],
        symbol=row[3],
        ts=int(row[4]),
        target_weight=float(row[5]),
        target_qty=float(row[6]),
        reason=row[7],
    )


def _fill(row: Row[Any]) -> Fill:
    """A fill from a row of :data:`_FILL_COLS`."""
    return Fill(
        order_id=row[0],
        symbol=row[1],
        ts=int(row[2]),
        qty=float(row[3]),
        price=float(row[4]),
        fee=float(row[5]),
    )


def _outbox(table: str) -> tuple[Any, Any]:
    if table not in _OUTBOX:
        raise ValueError(f"no outbox table {table!r}: use 'orders' or 'fills'")
    return _OUTBOX[table]


class OrderStore(MigratedStore):
    """Orders, fills, positions and queued MetricsUpdates on the database ``url`` names
    (see the module docstring and :func:`open_order_store`)."""

    def __init__(self, url: str) -> None:
        db = Database(url, unavailable=OrderStoreUnavailable, what="order store")
        super().__init__(db, MIGRATIONS, VERSION_TABLE)
        # RETURNING says whether the row went in (a key stored already returns nothing)
        self._add_order = (self.db.insert(t.orders)
                           .on_conflict_do_nothing(index_elements=["key"]).returning(_o.id))
        self._add_fill = (self.db.insert(t.fills)
                          .on_conflict_do_nothing(index_elements=["order_key"]).returning(_f.id))
        hold = self.db.insert(t.positions)
        self._hold = hold.on_conflict_do_update(
            index_elements=["world", "strategy_id", "symbol"], set_={"qty": hold.excluded.qty}
        )

    def record(self, intents: Iterable[OrderIntent]) -> list[OrderIntent]:
        """Store each order under its key, in one transaction; return those that are new."""
        return self.write(intents, [])[0]

    def write(
        self,
        intents: Iterable[OrderIntent],
        fills: Iterable[tuple[str, Fill, str, str, float]],
        published: bool = False,
    ) -> tuple[list[OrderIntent], list[Fill]]:
        """Orders, then fills ``(order key, fill, world, strategy, target position)`` with
        their position changes, in one transaction; return the orders and fills that are new
        (a key stored already is left as it is: a replayed decision or fill adds nothing).
        ``published``: stored as sent already, so the relay never publishes them (the paper
        orders of a run that follows its world's stage)."""
        new_orders, new_fills = [], []
        now = time.time_ns()
        with self.transaction() as conn:
            for o in intents:
                done = conn.execute(self._add_order, {
                    "key": intent_key(o), "world": o.world, "strategy_id": o.strategy_id,
                    "symbol": o.symbol, "ts": o.ts, "target_weight": o.target_weight,
                    "target_qty": o.target_qty, "reason": o.reason, "created": now,
                    "published": int(published),
                })
                if done.first() is not None:
                    new_orders.append(o)
            for key, f, world, strategy_id, target in fills:
                done = conn.execute(self._add_fill, {
                    "order_key": key, "world": world, "strategy_id": strategy_id,
                    "symbol": f.symbol, "ts": f.ts, "qty": f.qty, "price": f.price,
                    "fee": f.fee, "created": now, "published": int(published),
                })
                if done.first() is None:
                    continue
                new_fills.append(f)
                conn.execute(_MARK_FILLED, {"k": key})
                conn.execute(self._hold, {"world": world, "strategy_id": strategy_id,
                                    "symbol": f.symbol, "qty": target})
        return new_orders, new_fills

    def positions(self, world: str, strategy_id: str) -> dict[str, float]:
        """Quantity held per symbol."""
        with self.transaction() as conn:
            rows = conn.execute(_POSITIONS, {"world": world, "strategy_id": strategy_id}).all()
        return {r[0]: float(r[1]) for r in rows}

    def orders(
        self, world: str, strategy_id: str | None = None, open_only: bool = False
    ) -> list[OrderIntent]:
        """Orders in the order they were decided (optionally only those not filled)."""
        query = select(*_ORDER_COLS).where(_o.world == world)
        if strategy_id is not None:
            query = query.where(_o.strategy_id == strategy_id)
        if open_only:
            query = query.where(_o.filled == 0)
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(_o.id)).all()
        return [_intent(r) for r in rows]

    def fills(self, world: str, strategy_id: str | None = None) -> list[Fill]:
        """Fills in the order they happened."""
        query = select(*_FILL_COLS).where(_f.world == world)
        if strategy_id is not None:
            query = query.where(_f.strategy_id == strategy_id)
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(_f.id)).all()
        return [_fill(r) for r in rows]

    def unpublished(
        self, table: str, limit: int = 1000, before: int | None = None
    ) -> list[tuple[int, str, str]]:
        """``(id, key, JSON)`` of orders or fills (``table``) not yet published, oldest
        first (only those stored before ``before``, ns, when given)."""
        rows_of, _ = _outbox(table)
        c = rows_of.c
        cols = _ORDER_COLS if table == "orders" else _FILL_COLS
        query = select(c.id, *cols).where(c.published == 0)
        if before is not None:
            query = query.where(c.created < before)
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(c.id).limit(limit)).all()
        if table == "orders":
            return [(int(r[0]), r[1], _intent(r[1:]).model_dump_json()) for r in rows]
        return [(int(r[0]), r[1], _fill(r[1:]).model_dump_json()) for r in rows]

    def mark_published_keys(self, table: str, keys: list[str]) -> None:
        """Mark orders (by key) or fills (by order key) as acknowledged by Kafka."""
        rows_of, key = _outbox(table)
        if not keys:
            return
        with self.transaction() as conn:
            conn.execute(update(rows_of).where(key == bindparam("k")).values(published=1),
                         [{"k": k} for k in keys])

    def queue_update(self, update: MetricsUpdate) -> bool:
        """Queue ``update`` for the world; False when its run has queued this seq or a later
        one already (a restarted flow emitting a stretch again)."""
        run = {"world": update.world, "strategy_id": update.strategy_id,
               "run_id": update.run_id}
        with self.transaction() as conn:
            last = conn.execute(_LAST_SEQ, run).scalar()
            if last is not None and int(last) >= update.seq:
                return False
            conn.execute(_QUEUE_UPDATE, {**run, "seq": update.seq,
                                         "body": update.model_dump_json()})
        return True

    def last_update(self, world: str, strategy_id: str, run_id: str) -> MetricsUpdate | None:
        """The latest MetricsUpdate queued for one run (sent or not), or None. One queued
        before returns carried their times (bare numbers) is read without its returns."""
        run = {"world": world, "strategy_id": strategy_id, "run_id": run_id}
        with self.transaction() as conn:
            body = conn.execute(_LAST_UPDATE, run).scalar()
        if body is None:
            return None
        data = json.loads(body)
        if any(not isinstance(r, list) for r in data.get("returns", [])):
            data["returns"] = []
        return MetricsUpdate.model_validate(data)

    def unsent_updates(self, world: str, limit: int = 500) -> list[tuple[int, str]]:
        """``(id, JSON)`` of queued updates not yet accepted by the world, oldest first."""
        with self.transaction() as conn:
            rows = conn.execute(_UNSENT, {"world": world, "limit": limit}).all()
        return [(int(r[0]), r[1]) for r in rows]

    def mark_sent(self, ids: list[int]) -> None:
        """Mark queued updates as accepted by the world."""
        if not ids:
            return
        with self.transaction() as conn:
            conn.execute(_MARK_SENT, [{"i": i} for i in ids])


def default_order_store_url() -> str:
    """``~/.qmtl/orders.db``.

    >>> default_order_store_url().endswith("orders.db")
    True
    """
    return str(Path.home() / ".qmtl" / "orders.db")


def open_order_store(url: str | None = None) -> OrderStore:
    """An order store by URL: ``postgresql://...[?schema=s]``, ``sqlite:///path`` or a file
    path (default ``~/.qmtl/orders.db``)."""
    return OrderStore(url or default_order_store_url())
