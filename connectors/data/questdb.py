"""QuestDB: shared bar history. Reads over the PostgreSQL wire protocol (psycopg 3), writes
with the ``questdb`` client (InfluxDB line protocol over HTTP or TCP).

One table per interval (``bars_1m``, ``bars_1d``, ...; the template is configurable), shaped::

    CREATE TABLE bars_1m (symbol SYMBOL, open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE,
                          volume DOUBLE, ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY MONTH WAL
                          DEDUP UPSERT KEYS(ts, symbol);

``ts`` is the bar's close time (QuestDB keeps microseconds; QMTL's nanoseconds are truncated
to them on the way in). The reader asks parameterized SQL by symbol and time range and pages
through the result by time (``ts > last ... ORDER BY ts LIMIT n``), so memory stays bounded
and no server-side cursor is needed; timestamps are decoded straight to int64 ns.

>>> table_name("bars_{interval}", "1m")
'bars_1m'
>>> DEFAULT_PG
'postgresql://admin:quest@127.0.0.1:8812/qdb'
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import psycopg
from psycopg import pq, sql
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict
from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_none,
)

from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.errors import QmtlError

DEFAULT_PG = "postgresql://admin:quest@127.0.0.1:8812/qdb"
"""QuestDB's default PG-wire address and credentials."""
DEFAULT_ILP = "http::addr=127.0.0.1:9000;"
"""QuestDB's default ILP-over-HTTP address, as a ``questdb`` client configuration string."""
_EPOCH_2000_US = 946_684_800_000_000  # PostgreSQL binary timestamps count from 2000-01-01


class QuestDBError(QmtlError, OSError):
    """QuestDB could not be reached or refused a query or a write (the message says which)."""


def table_name(template: str, interval: str) -> str:
    """The table holding ``interval`` bars."""
    return template.format(interval=interval)


def _ident(name: str) -> Any:
    return sql.Identifier(*name.split("."))


def _to_param(ns: int, up: bool) -> dt.datetime:
    """ns -> naive UTC datetime at microsecond precision (rounded toward the inside)."""
    us = -(-ns // 1000) if up else ns // 1000
    return dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)


def _loaders() -> tuple[type, type]:
    class TimestampNsBinary(Loader):
        format = pq.Format.BINARY

        def load(self, data: Any) -> int:
            return (int.from_bytes(data, "big", signed=True) + _EPOCH_2000_US) * 1000

    class TimestampNsText(Loader):
        format = pq.Format.TEXT

        def load(self, data: Any) -> int:
            text = bytes(data).decode()
            value = dt.datetime.fromisoformat(text.replace(" ", "T"))
            if value.tzinfo is not None:
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            delta = value - dt.datetime(1970, 1, 1)
            return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000

    return TimestampNsBinary, TimestampNsText


class QuestDBReader:
    """Bars from QuestDB (or any PostgreSQL-wire database with tables of the same shape).

    ``conninfo``: a libpq URL or key=value string (default: QuestDB's own, see
    :data:`DEFAULT_PG`); ``table``: the table name template; ``page_rows``: rows per query.
    """

    def __init__(
        self,
        conninfo: str = DEFAULT_PG,
        table: str = "bars_{interval}",
        page_rows: int = 100_000,
        binary: bool = True,
        connect_timeout: float = 5.0,
    ) -> None:
        if page_rows < 1:
            raise ValueError(f"page_rows must be >= 1, got {page_rows}")
        self.conninfo = conninfo
        self.table = table
        self.page_rows = int(page_rows)
        self.binary = binary
        self.connect_timeout = connect_timeout
        self._conn: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        """Where it reads, without the password."""
        try:
            d = conninfo_to_dict(self.conninfo)
        except Exception:
            return "questdb"
        return f"questdb {d.get('host', '?')}:{d.get('port', 5432)}"

    def __repr__(self) -> str:
        return f"QuestDBReader({self.name!r}, table={self.table!r})"

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(
                    self.conninfo, autocommit=True, connect_timeout=int(self.connect_timeout)
                )
            except psycopg.Error as exc:
                raise QuestDBError(f"cannot connect to {self.name}: {exc}".strip()) from None
            binary_loader, text_loader = _loaders()
            for oid_name in ("timestamp", "timestamptz"):
                self._conn.adapters.register_loader(oid_name, binary_loader)
                self._conn.adapters.register_loader(oid_name, text_loader)
        return self._conn

    def _query(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        """Rows of ``query``, or None when the table does not exist. A dropped connection is
        reopened and the query asked once more (``tenacity``)."""
        retrying = Retrying(retry=retry_if_exception_type(psycopg.OperationalError),
                            stop=stop_after_attempt(2), wait=wait_none(), reraise=True)
        with self._lock:
            try:
                return retrying(self._ask, query, params)
            except psycopg.OperationalError as exc:
                raise QuestDBError(f"{self.name}: {exc}".strip()) from None

    def _ask(self, query: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]] | None:
        conn = self._connection()
        try:
            with conn.cursor(binary=self.binary) as cur:
                cur.execute(query, params)
                return cur.fetchall()
        except psycopg.errors.UndefinedTable:
            return None
        except psycopg.OperationalError:
            conn.close()
            raise
        except psycopg.Error as exc:
            if "does not exist" in str(exc):  # QuestDB's wording for a missing table
                return None
            raise QuestDBError(f"{self.name}: {exc}".strip()) from None

    def span(self, symbol: str, interval: str) -> tuple[int, int, int] | None:
        """``(first ts, last ts, rows)`` held for ``symbol``, or None."""
        q = sql.SQL("SELECT min(ts), max(ts), count(*) FROM {} WHERE symbol = %s").format(
            _ident(table_name(self.table, interval))
        )
        rows = self._query(q, (symbol,))
        if not rows or rows[0][0] is None:
            return None
        first, last, count = rows[0]
        return int(first), int(last), int(count)

    def iter_pages(self, symbol: str, interval: str, start: int, end: int) -> Iterator[Batch]:
        """Bars of ``symbol`` with ``start <= ts <= end``, ``page_rows`` per batch."""
        table = _ident(table_name(self.table, interval))
        first = sql.SQL(
            "SELECT ts, open, high, low, close, volume FROM {} "
            "WHERE symbol = %s AND ts >= %s AND ts <= %s ORDER BY ts LIMIT %s"
        ).format(table)
        after = sql.SQL(
            "SELECT ts, open, high, low, close, volume FROM {} "
            "WHERE symbol = %s AND ts > %s AND ts <= %s ORDER BY ts LIMIT %s"
        ).format(table)
        lo, hi = _to_param(start, up=True), _to_param(end, up=False)
        query = first
        while True:
            rows = self._query(query, (symbol, lo, hi, self.page_rows))
            if not rows:
                return
            yield rows_to_batch(rows)
            if len(rows) < self.page_rows:
                return
            lo, query = _to_param(int(rows[-1][0]), up=False), after

    def read(self, symbol: str, interval: str, start: int, end: int) -> Batch:
        """All bars of ``symbol`` with ``start <= ts <= end`` in one batch."""
        pages = list(self.iter_pages(symbol, interval, start, end))
        if not pages:
            return rows_to_batch([])
        return {c: np.concatenate([p[c] for p in pages]) for c in BAR_COLUMNS}

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def rows_to_batch(rows: list[tuple[Any, ...]]) -> Batch:
    """``(ts ns, open, high, low, close, volume)`` rows -> a bar batch (NULL volume -> 0).

    >>> rows_to_batch([(5, 1.0, 2.0, 0.5, 1.5, None)])["volume"].tolist()
    [0.0]
    """
    if not rows:
        out = {c: np.empty(0) for c in BAR_COLUMNS}
        out["ts"] = np.empty(0, dtype=np.int64)
        return out
    cols = list(zip(*rows, strict=True))
    out = {"ts": np.fromiter(cols[0], dtype=np.int64, count=len(rows))}
    for i, c in enumerate(BAR_COLUMNS[1:], start=1):
        out[c] = np.array(cols[i], dtype=np.float64)  # None -> nan
    out["volume"] = np.nan_to_num(out["volume"], nan=0.0)
    return out


def _ingress() -> Any:
    try:
        import questdb as q

        if hasattr(q, "Sender") and hasattr(q, "TimestampNanos"):
            return q
    except ImportError:
        raise ImportError("the QuestDB writer needs the questdb client: "
                          "pip install 'qmtl[questdb]'") from None
    import questdb.ingress as qi  # older clients

    return qi


class QuestDBWriter:
    """Writes bars to QuestDB over ILP (``conf``: a ``questdb`` client configuration string,
    e.g. ``http::addr=host:9000;`` or ``tcp::addr=host:9009;``), one flush per batch, retried
    ``retries`` times with exponential backoff (reconnecting; ``tenacity``) before it gives
    up."""

    def __init__(
        self,
        conf: str = DEFAULT_ILP,
        table: str = "bars_{interval}",
        retries: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conf = conf
        self.table = table
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.sleep = sleep
        self._sender: Any = None
        self._lock = threading.Lock()
        self.name = "questdb ilp " + conf.split("addr=", 1)[-1].split(";", 1)[0]

    def _open(self) -> Any:
        if self._sender is None:
            q = _ingress()
            sender = q.Sender.from_conf(self.conf)
            if hasattr(sender, "establish"):
                sender.establish()
            else:  # pragma: no cover - older clients
                sender.__enter__()
            self._sender = sender
        return self._sender

    def _drop(self) -> None:
        if self._sender is not None:
            try:
                self._sender.close()
            except Exception:
                pass
            self._sender = None

    def write(self, symbol: str, interval: str, batch: Batch) -> int:
        """Write ``batch`` as rows of ``symbol`` and flush; return rows written."""
        n = len(batch["ts"])
        if n == 0:
            return 0
        q = _ingress()
        table = table_name(self.table, interval)
        cols = {c: np.asarray(batch[c], dtype=np.float64).tolist() for c in BAR_COLUMNS[1:]}
        stamps = np.asarray(batch["ts"], dtype=np.int64).tolist()
        retrying = Retrying(stop=stop_after_attempt(self.retries + 1),
                            wait=wait_exponential(multiplier=self.backoff, exp_base=2),
                            sleep=self.sleep, reraise=True)
        with self._lock:
            try:
                return retrying(self._send, q, table, symbol, cols, stamps)
            except Exception as exc:
                raise QuestDBError(
                    f"{self.name}: writing {n} {interval} bars of {symbol!r} to {table} failed "
                    f"after {self.retries + 1} attempts: {exc}"
                ) from None

    def _send(self, q: Any, table: str, symbol: str, cols: dict[str, list[float]],
              stamps: list[int]) -> int:
        """One attempt: the rows in one buffer, flushed; the connection is dropped (and
        reopened by the next attempt) when it fails."""
        try:
            sender = self._open()
            buf = sender.new_buffer()
            for i, ts in enumerate(stamps):
                buf.row(table, symbols={"symbol": symbol},
                        columns={c: cols[c][i] for c in cols}, at=q.TimestampNanos(ts))
            sender.flush(buf)
            return len(stamps)
        except Exception:
            self._drop()
            raise

    def close(self) -> None:
        """Flush and close the connection."""
        with self._lock:
            self._drop()
