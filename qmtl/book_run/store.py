"""The book's durable ledger: an append-only table of its events, per world, in SQLite or
PostgreSQL (one code path, :mod:`qmtl.core.db`). Every event is committed before the book
acts on it (an order is stored ``new`` before it is sent), and the ledger is the fold of the
events (:class:`qmtl.book.ledger.Ledger`), so a restart, even after kill -9, is where the
last commit left it. Operator events (halt, resume, adopt) carry who and why: the table is
also the book's audit log.

>>> import tempfile, os
>>> s = open_book_store(os.path.join(tempfile.mkdtemp(), "book.db"))
>>> s.append("w", [{"kind": "state", "state": "HALTED", "reason": "test", "who": "me"}])
[1]
>>> s.load("w").state, [e["kind"] for e in s.events("w")]
('HALTED', ['state'])
>>> s.close()
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, insert, select

from qmtl.book.ledger import Ledger
from qmtl.core.db import Database, DatabaseUnavailable, MigratedStore, serial_id

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_book"

metadata = MetaData()
events_table = Table(
    "book_events",
    metadata,
    serial_id(),
    Column("world", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    sqlite_autoincrement=True,
)
_e = events_table.c


class BookStoreUnavailable(DatabaseUnavailable):
    """The book store cannot be reached; nothing was written."""


class BookStore(MigratedStore):
    """The ledger events of every world's book (see the module docstring)."""

    def __init__(self, url: str) -> None:
        db = Database(url, unavailable=BookStoreUnavailable, what="book store")
        super().__init__(db, MIGRATIONS, VERSION_TABLE)
        self._add = insert(events_table).returning(_e.id)

    def append(self, world: str, events: Iterable[dict[str, Any]]) -> list[int]:
        """Store events in one transaction (committed when this returns); their ids."""
        now = time.time_ns()
        rows = [
            {
                "world": world,
                "kind": e["kind"],
                "body": json.dumps(e, sort_keys=True),
                "created": now,
            }
            for e in events
        ]
        if not rows:
            return []
        with self.transaction() as conn:
            return [int(conn.execute(self._add, r).scalar_one()) for r in rows]

    def events(self, world: str, after: int = 0) -> list[dict[str, Any]]:
        """The world's events in the order they were stored (each with its ``_id`` and
        ``_at``, ns), after the event id ``after``."""
        query = (
            select(_e.id, _e.body, _e.created)
            .where(_e.world == world, _e.id > after)
            .order_by(_e.id)
        )
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(query).all()
        return [{**json.loads(b), "_id": int(i), "_at": int(c)} for i, b, c in rows]

    def worlds(self) -> list[str]:
        """The worlds that have a book here."""
        with self.transaction(read_only=True) as conn:
            return [r[0] for r in conn.execute(select(_e.world).distinct().order_by(_e.world))]

    def load(self, world: str, account: str = "main", currency: str = "USDT") -> Ledger:
        """The world's ledger: its events folded."""
        led = Ledger(world, account=account, currency=currency)
        for e in self.events(world):
            led.apply(e)
        return led


def default_book_store_url() -> str:
    """``~/.qmtl/book.db``.

    >>> default_book_store_url().endswith("book.db")
    True
    """
    return str(Path.home() / ".qmtl" / "book.db")


def open_book_store(url: str | None = None) -> BookStore:
    """A book store by URL: ``postgresql://...[?schema=s]``, ``sqlite:///path`` or a file
    path (default ``~/.qmtl/book.db``)."""
    return BookStore(url or default_book_store_url())
