"""One SQL interface over two backends, chosen by URL: a SQLite file (nothing to start) or
PostgreSQL. Shared by the world store and the order store.

Statements are written with ``?`` placeholders (PostgreSQL gets ``%s``); every use is one
transaction that commits on success and rolls back on error; a database that cannot be
reached raises the store's ``unavailable`` error, so callers can say that nothing was written.

>>> import tempfile, os
>>> class Notes(SqliteBackend):
...     ddl = ["CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT)"]
>>> db = Notes(os.path.join(tempfile.mkdtemp(), "n.db"))
>>> with db.transaction() as cur:
...     _ = db.execute(cur, "INSERT INTO notes (text) VALUES (?)", ["hi"])
>>> with db.transaction() as cur:
...     db.execute(cur, "SELECT text FROM notes").fetchall()
[('hi',)]
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from qmtl.core.errors import QmtlError


class DatabaseUnavailable(QmtlError):
    """The database cannot be reached or failed; nothing was written."""


class SqlBackend:
    """Backend-independent helpers; subclasses set ``ddl`` (statements run at start, with
    ``{serial}`` standing for an auto-increment primary key column type)."""

    ddl: ClassVar[list[str]] = []
    serial: ClassVar[str] = "INTEGER PRIMARY KEY AUTOINCREMENT"
    unavailable: ClassVar[type[Exception]] = DatabaseUnavailable
    url: str

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        raise NotImplementedError
        yield

    def _sql(self, sql: str) -> str:
        return sql

    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        """Exception types of a violated constraint (e.g. a duplicate primary key)."""
        return (sqlite3.IntegrityError,)

    def execute(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders) on ``cur``; return the cursor."""
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def create_tables(self) -> None:
        """Run ``ddl`` (idempotent statements)."""
        with self.transaction() as cur:
            for stmt in self.ddl:
                self.execute(cur, stmt.replace("{serial}", self.serial))

    def close(self) -> None:
        """Release connections."""


class SqliteBackend(SqlBackend):
    """A SQLite file (WAL; one connection per thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.create_tables()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise self.unavailable(f"cannot open SQLite store {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self.unavailable(f"SQLite store {self.path}: {exc}") from None
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            try:
                conn.commit()
            except sqlite3.Error as exc:
                conn.rollback()
                raise self.unavailable(f"SQLite store {self.path}: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresBackend(SqlBackend):
    """PostgreSQL (psycopg 3, one connection per thread); ``schema`` puts the tables in a
    schema of their own (e.g. one per test run)."""

    serial = "BIGSERIAL PRIMARY KEY"

    def __init__(self, url: str, schema: str | None = None) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.schema = schema
        self._local = threading.local()
        if schema:
            with self.transaction() as cur:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self.create_tables()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, connect_timeout=5)
            except self._psycopg.OperationalError as exc:
                raise self.unavailable(f"cannot reach PostgreSQL store: {exc}".strip()) from None
            if self.schema:
                conn.execute(f'SET search_path TO "{self.schema}"')
                conn.commit()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except self._psycopg.OperationalError as exc:
            self._local.conn = None
            raise self.unavailable(f"PostgreSQL store: {exc}".strip()) from None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.errors.IntegrityError,)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def parse_db_url(url: str) -> tuple[str, str, str | None]:
    """``(kind, target, schema)`` of a store URL: ``postgresql://...[?schema=s]``,
    ``sqlite:///path`` or a plain file path.

    >>> parse_db_url("postgresql://u@h/db?schema=t1&sslmode=disable")
    ('postgresql', 'postgresql://u@h/db?sslmode=disable', 't1')
    >>> parse_db_url("sqlite:////tmp/x.db")
    ('sqlite', '/tmp/x.db', None)
    """
    if url.startswith(("postgresql://", "postgres://")):
        base, _, query = url.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        schema = params.pop("schema", None)
        rest = "&".join(f"{k}={v}" for k, v in params.items())
        return "postgresql", base + (f"?{rest}" if rest else ""), schema
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    return "sqlite", url, None
