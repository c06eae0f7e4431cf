"""SQL plumbing shared by the world store and the order store: SQLAlchemy Core over a SQLite
file (nothing to start) or PostgreSQL, chosen by URL, with one code path for both; each store
keeps its schema current with its own Alembic migrations, run when it opens.

Every use is one transaction that commits on success and rolls back on error (SQLite takes
the write lock at the start, ``BEGIN IMMEDIATE``, so writers queue instead of failing); a
database that cannot be reached raises the store's ``unavailable`` error, so callers can say
that nothing was written.

>>> import os, tempfile
>>> from sqlalchemy import text
>>> db = Database(os.path.join(tempfile.mkdtemp(), "n.db"))
>>> with db.transaction() as conn:
...     _ = conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
...     _ = conn.execute(text("INSERT INTO notes (body) VALUES (:b)"), {"b": "hi"})
>>> with db.transaction() as conn:
...     conn.execute(text("SELECT body FROM notes")).all()
[('hi',)]
>>> db.close()
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    URL,
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    Table,
    create_engine,
    event,
    exc,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from qmtl.core.errors import QmtlError

log = logging.getLogger("qmtl.db")
_MIGRATING = threading.Lock()

__all__ = [
    "Database",
    "DatabaseUnavailable",
    "DatabaseUrlError",
    "IntegrityError",
    "database_url",
    "head_revision",
    "run_migrations",
]


class DatabaseUnavailable(QmtlError):
    """The database cannot be reached or failed; nothing was written."""


class DatabaseUrlError(QmtlError, ValueError):
    """A store URL that is neither a file path, ``sqlite:///path`` nor ``postgresql://...``."""


def database_url(url: str) -> tuple[URL, str | None]:
    """The SQLAlchemy URL of a store URL and the PostgreSQL schema it names (``?schema=``):
    a plain file path or ``sqlite:///path`` is a SQLite file, ``postgresql://`` (or
    ``postgres://``) a PostgreSQL database, reached with psycopg 3.

    >>> u, schema = database_url("postgresql://u@h/db?schema=t1&sslmode=disable")
    >>> u.render_as_string(), schema
    ('postgresql+psycopg://u@h/db?sslmode=disable', 't1')
    >>> database_url("sqlite:////tmp/x.db")[0].database
    '/tmp/x.db'
    >>> database_url("~/w.db")[0].database == str(Path.home() / "w.db")
    True
    >>> database_url("mysql://h/db")
    Traceback (most recent call last):
    ...
    qmtl.core.db.DatabaseUrlError: unsupported store URL 'mysql://h/db': use a file path, ...
    """
    if "://" not in url:
        return URL.create("sqlite", database=str(Path(url).expanduser())), None
    try:
        parsed = make_url(url)
    except exc.ArgumentError as e:
        raise DatabaseUrlError(f"cannot parse store URL {url!r}: {e}") from None
    backend = parsed.drivername.split("+")[0]
    if backend == "sqlite":
        if not parsed.database:
            raise DatabaseUrlError(f"store URL {url!r} names no file: use sqlite:///path")
        return parsed.set(database=str(Path(parsed.database).expanduser())), None
    if backend in ("postgresql", "postgres"):
        schema = parsed.query.get("schema")
        if isinstance(schema, tuple):
            raise DatabaseUrlError(f"store URL {url!r} names more than one schema")
        return parsed.difference_update_query(["schema"]).set(drivername="postgresql+psycopg"), (
            schema or None
        )
    raise DatabaseUrlError(
        f"unsupported store URL {url!r}: use a file path, sqlite:///path or postgresql://..."
    )


def _current_revision(conn: Connection, version_table: str) -> str | None:
    ctx = MigrationContext.configure(conn, opts={"version_table": version_table})
    return ctx.get_current_revision()


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def serial_id() -> Column:
    """An auto-increment ``id`` primary key: BIGSERIAL on PostgreSQL, AUTOINCREMENT on SQLite.

    >>> serial_id().name, serial_id().primary_key
    ('id', True)
    """
    return Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True)


class Database:
    """One SQLAlchemy engine on the database a store URL names (see the module docstring).

    ``unavailable`` is the error raised when the database cannot be reached; ``what`` names
    the store in its messages. :meth:`migrate` brings the schema to the latest revision.
    """

    def __init__(
        self,
        url: str,
        unavailable: type[Exception] = DatabaseUnavailable,
        what: str = "store",
    ) -> None:
        sa_url, self.schema = database_url(url)
        self.unavailable = unavailable
        self._local = threading.local()
        self.dialect = "postgresql" if sa_url.drivername.startswith("postgresql") else "sqlite"
        if self.dialect == "sqlite":
            path = Path(sa_url.database or "")
            self.url = f"sqlite:///{path}"
            self._where = f"SQLite {what} {path}"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise unavailable(f"cannot open {self._where}: {e}") from None
            self.engine = self._sqlite_engine(sa_url)
        else:
            self.url = make_url(url).render_as_string(hide_password=True)
            host = f"{sa_url.host or 'localhost'}{f':{sa_url.port}' if sa_url.port else ''}"
            self._where = f"PostgreSQL {what} {host}/{sa_url.database}"
            self.engine = self._postgres_engine(sa_url)

    @staticmethod
    def _sqlite_engine(url: URL) -> Engine:
        # WAL, one writer at a time: the write lock is taken when a transaction begins
        # (see _begin)
        engine = create_engine(
            url,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=8,
            max_overflow=-1,
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # the driver begins nothing by itself
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        return engine

    def _postgres_engine(self, url: URL) -> Engine:
        engine = create_engine(
            url, connect_args={"connect_timeout": 5}, pool_size=8, max_overflow=-1
        )
        if self.schema:
            search_path = f"SET search_path TO {_quote_ident(self.schema)}"

            @event.listens_for(engine, "connect", insert=True)
            def _connect(dbapi_conn: Any, _record: Any) -> None:
                autocommit = dbapi_conn.autocommit
                dbapi_conn.autocommit = True
                dbapi_conn.execute(search_path)
                dbapi_conn.autocommit = autocommit

        return engine

    def _failed(self, e: exc.DBAPIError | exc.TimeoutError) -> Exception:
        cause = getattr(e, "orig", None) or e
        detail = " ".join(str(cause).split())
        return self.unavailable(f"{self._where}: {detail}" if detail else self._where)

    def _connection(self) -> Connection:
        """This thread's connection (one per thread, kept: a checkout from the pool for each
        transaction costs more than a small transaction itself)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.engine.connect()
        return conn

    def _drop_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with suppress(exc.SQLAlchemyError):
                conn.close()

    @staticmethod
    def _begin(conn: Connection, how: str) -> None:
        """SQLite: ``BEGIN IMMEDIATE`` takes the write lock as the transaction begins, so
        writers queue (up to the connection's timeout) instead of failing when a reader turns
        writer; ``BEGIN`` (deferred) reads one snapshot and takes no lock. Sent on the
        driver's connection: an engine-level event or SQLAlchemy's statement path would cost
        more than a small transaction itself."""
        try:
            conn.connection.driver_connection.execute(how)
        except sqlite3.Error as e:
            raise exc.OperationalError(how, (), e) from None

    @contextmanager
    def transaction(self, read_only: bool = False) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error
        (which propagates; a lost or unreachable database raises ``unavailable``).

        ``read_only``: the transaction only reads, so on SQLite it does not take the write
        lock (a WAL reader sees one snapshot, the last commit, and never waits for a
        writer); it must not write."""
        try:
            conn = self._connection()
            with conn.begin():
                if self.dialect == "sqlite":
                    self._begin(conn, "BEGIN" if read_only else "BEGIN IMMEDIATE")
                yield conn
        except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as e:
            self._drop_connection()  # the next transaction connects again
            raise self._failed(e) from None
        except exc.DBAPIError as e:
            if e.connection_invalidated:
                self._drop_connection()
                raise self._failed(e) from None
            raise

    def insert(self, table: Table) -> Any:
        """An ``INSERT`` on ``table`` that knows ``ON CONFLICT`` (``on_conflict_do_nothing``,
        ``on_conflict_do_update``), in this database's dialect."""
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def migrate(self, directory: Path, version_table: str) -> None:
        """Upgrade the schema to the latest revision of the Alembic scripts in ``directory``,
        recording it in ``version_table``; one transaction, so a failed step leaves the
        database as it was. Concurrent openers wait for each other (SQLite: the write lock;
        PostgreSQL: an advisory lock), so one of them migrates."""
        config = Config()
        config.set_main_option("script_location", str(directory))
        # Alembic's `context` and `op` are process-wide: one migration at a time per process
        with _MIGRATING, self.transaction() as conn:
            if self.dialect == "postgresql":
                # one lock per schema: both stores may share one, and create it
                key = zlib.crc32(f"qmtl:{self.schema}".encode()) - 2**31
                conn.execute(select(func.pg_advisory_xact_lock(key)))
                if self.schema:
                    conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(self.schema)}")
            existing = set(inspect(conn).get_table_names()) - {version_table}
            before = _current_revision(conn, version_table)
            config.attributes["connection"] = conn
            config.attributes["version_table"] = version_table
            command.upgrade(config, "head")
            after = _current_revision(conn, version_table)
        if existing and after != before:  # a store with data in it was upgraded: say so
            log.info("%s: schema upgraded from %s to %s", self._where,
                     before or "before migrations", after)

    def revision(self, version_table: str) -> str | None:
        """The schema revision recorded in ``version_table`` (None before any)."""
        with self.transaction() as conn:
            return _current_revision(conn, version_table)

    def close(self) -> None:
        """Release this thread's connection and the pool (the store may be used again: it
        reconnects)."""
        self._drop_connection()
        self.engine.dispose()


class MigratedStore:
    """The base of a store on one :class:`Database` whose tables its own Alembic history
    (``migrations``, recorded in ``version_table``) keeps current: opening it migrates the
    schema, and a failed migration closes the connections it opened.

    >>> import tempfile
    >>> from pathlib import Path
    >>> db = Database(str(Path(tempfile.mkdtemp()) / "x.db"), what="example store")
    >>> class Empty(MigratedStore):
    ...     pass
    >>> Empty(db, Path("no-such-folder"), "alembic_version_x")
    Traceback (most recent call last):
    ...
    alembic.util.exc.CommandError: Path doesn't exist: no-such-folder. ...
    """

    def __init__(self, db: Database, migrations: Path, version_table: str) -> None:
        self.db = db
        self.url = db.url
        try:
            db.migrate(migrations, version_table)
        except BaseException:
            db.close()
            raise

    def transaction(self, read_only: bool = False) -> AbstractContextManager[Connection]:
        """A connection inside one transaction (committed on success, rolled back on
        error); ``read_only`` for one that only reads (see :meth:`Database.transaction`)."""
        return self.db.transaction(read_only)

    def close(self) -> None:
        """Release the connections."""
        self.db.close()


def head_revision(directory: Path) -> str | None:
    """The latest revision of the Alembic scripts in ``directory``."""
    return ScriptDirectory(str(directory)).get_current_head()


def run_migrations(context: Any) -> None:
    """The body of each store's Alembic ``env.py``: run the migrations on the connection
    :meth:`Database.migrate` handed over, inside its transaction."""
    attributes = context.config.attributes
    context.configure(
        connection=attributes["connection"],
        version_table=attributes["version_table"],
        render_as_batch=True,  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()
