"""QuestDB as a live source: tail a table of bars over the PostgreSQL wire protocol.

``qmtl run --mode live --source 'questdb://admin:quest@host:8812/qdb?table=bars_{interval}'``
reads the rows written after the last one seen, in bounded polls::

    SELECT symbol, ts, open, high, low, close, volume FROM <table>
    WHERE ts > <last seen> AND symbol IN (...) ORDER BY ts, symbol LIMIT <page>

The feed's position is the last ``ts`` it handed out (in the live source's recovery
snapshot), so a restarted run goes on from there. A page that comes back full may end in
the middle of a time (another symbol's bar at the same ``ts`` on the next page), so its last
time is left for the next poll (``ts > last`` would skip the rest of it): no row is lost and
none repeated at the boundary. A row written later with a ``ts`` at or before the last one
seen is not read (QuestDB's out-of-order writes into the past; the catalog backfill is for
those). The QuestDB-specific part is only the table's shape (see
:mod:`connectors.data.questdb`) and the URL; the SQL above is plain and runs on PostgreSQL
too, which is what the tests run it on (:func:`tail_query` is the one place it is written).

>>> parse_source("questdb://admin:quest@h:8812/qdb?table=bars_{interval}&page_rows=500")
('postgresql://admin:quest@h:8812/qdb', 'bars_{interval}', 500)
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
from psycopg import sql

from connectors.data.questdb import QuestDBError, QuestDBReader, _ident, _to_param, table_name
from connectors.live.feeds import RawMessage
from qmtl.core.bars import Batch


def parse_source(url: str) -> tuple[str, str, int]:
    """``questdb://user:pass@host:port/db?table=T&page_rows=N`` -> (the PostgreSQL conninfo,
    the table template, rows per poll); defaults ``bars_{interval}`` and 10,000."""
    parts = urlsplit(url)
    if parts.scheme != "questdb":
        raise ValueError(f"not a questdb:// URL: {url!r}")
    query = dict(parse_qsl(parts.query))
    table = query.pop("table", "bars_{interval}")
    try:
        page = int(query.pop("page_rows", 10_000))
    except ValueError:
        raise ValueError(f"{url}: page_rows must be a whole number") from None
    if page < 1:
        raise ValueError(f"{url}: page_rows must be >= 1, got {page}")
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))
    return conninfo, table, page


def tail_query(table: str, n_symbols: int) -> Any:
    """The tail's SQL (PostgreSQL and QuestDB alike), with parameters ``(after, *symbols,
    limit)``.

    >>> from psycopg import sql
    >>> "ORDER BY ts, symbol LIMIT" in repr(tail_query("bars_1m", 2))
    True
    """
    marks = sql.SQL(", ").join([sql.Placeholder()] * n_symbols)
    return sql.SQL(
        "SELECT symbol, ts, open, high, low, close, volume FROM {} "
        "WHERE ts > %s AND symbol IN ({}) ORDER BY ts, symbol LIMIT %s"
    ).format(_ident(table), marks)


class QuestDBTail:
    """A live run's feed over a QuestDB (or PostgreSQL) table (see the module docstring):
    rows with ``ts > after`` for ``symbols``, ``page_rows`` per poll.

    >>> t = QuestDBTail(QuestDBReader("postgresql://127.0.0.1:1/x"), "1m", ["A"], after=5)
    >>> t.positions()
    {0: 5}
    """

    def __init__(
        self,
        reader: QuestDBReader,
        interval: str,
        symbols: list[str],
        after: int,
        page_rows: int = 10_000,
    ) -> None:
        self.reader = reader
        self.table = table_name(reader.table, interval)
        self.topic = f"questdb:{self.table}"
        self.symbols = list(symbols)
        self.last = int(after)
        self.page_rows = int(page_rows)
        self.exhausted = False
        self._offset = 0
        self._error: str | None = None

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """The rows written since the last poll, one message per symbol (waits up to
        ``timeout`` when there are none)."""
        limit = max(self.page_rows, 1)
        while True:
            try:
                rows = (
                    self.reader._query(
                        tail_query(self.table, len(self.symbols)),
                        (_to_param(self.last, up=False), *self.symbols, limit),
                    )
                    or []
                )
                self._error = None
            except QuestDBError as exc:
                self._error = str(exc)
                time.sleep(timeout)
                return []
            if len(rows) == limit:  # full: its last time may go on in the next page
                last_t = int(rows[-1][1])
                keep = [r for r in rows if int(r[1]) < last_t]
                if not keep:  # one time fills the page: ask for more
                    limit *= 2
                    continue
                rows = keep
            break
        if not rows:
            time.sleep(timeout)
            return []
        self.last = int(rows[-1][1])
        return self._messages(rows)

    def _messages(self, rows: list[tuple[Any, ...]]) -> list[RawMessage]:
        by: dict[str, list[tuple[Any, ...]]] = {}
        for r in rows:
            by.setdefault(str(r[0]), []).append(r)
        out = []
        for symbol, rs in by.items():
            batch: Batch = {"ts": np.array([int(r[1]) for r in rs], dtype=np.int64)}
            for i, c in enumerate(("open", "high", "low", "close", "volume"), start=2):
                batch[c] = np.array([np.nan if r[i] is None else float(r[i]) for r in rs])
            batch["volume"] = np.nan_to_num(batch["volume"], nan=0.0)
            out.append(RawMessage(0, self._offset, symbol.encode(), None, [(symbol, batch)]))
            self._offset += 1
        return out

    def positions(self) -> dict[int, int]:
        """The last ``ts`` handed out: where a resumed run goes on."""
        return {0: self.last}

    def commit(self, positions: dict[int, int]) -> None:
        """Nothing to commit: the position is in the run's snapshot."""

    def status(self) -> str | None:
        """The database's error, while it lasts."""
        return self._error

    def close(self) -> None:
        """Close the connection."""
        self.reader.close()
