"""Fixtures for the data layers: bar sets, a folder origin that counts its fetches, and a
QuestDB-shaped table on the machine's PostgreSQL (a schema of its own per test, dropped after)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.data.origins import FolderOrigin
from tests.world_api.conftest import PG_URL
from tests.world_api.conftest import _ensure_pg as ensure_pg


class CountingOrigin(FolderOrigin):
    """A real folder origin that records every fetch call (symbol, interval, start, end)."""

    def __init__(self, root: Path, **kw) -> None:
        super().__init__(root, **kw)
        self.calls: list[tuple[str, str, int, int]] = []

    def fetch(self, symbol, interval, start, end):
        self.calls.append((symbol, interval, start, end))
        return super().fetch(symbol, interval, start, end)


def write_origin_file(root: Path, symbol: str, interval: str, bars: dict, fmt: str = "csv") -> Path:
    """Store ``bars`` as an origin file ``root/interval/symbol.(csv|parquet)``."""
    folder = root / interval
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        path = folder / f"{symbol}.parquet"
        pq.write_table(pa.table(bars), path)
        return path
    path = folder / f"{symbol}.csv"
    lines = ["timestamp,open,high,low,close,volume"] + [
        ",".join([str(int(t)), *(repr(float(x)) for x in row)])
        for t, *row in zip(bars["ts"], bars["open"], bars["high"], bars["low"], bars["close"],
                           bars["volume"], strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema on the machine's PostgreSQL (started if it is down), dropped after."""
    import psycopg

    why = ensure_pg()
    if why:
        pytest.skip(why)
    schema = f"qmtl_data_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def create_bars_table(schema: str, interval: str, rows: dict[str, dict]) -> None:
    """A QuestDB-shaped ``bars_<interval>`` table in ``schema`` holding ``rows`` per symbol."""
    import psycopg

    table = f'"{schema}"."bars_{interval}"'
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (symbol text, open double precision, high double precision, "
            "low double precision, close double precision, volume double precision, "
            "ts timestamp)"
        )
        epoch = dt.datetime(1970, 1, 1)
        with conn.cursor().copy(
            f"COPY {table} (symbol, open, high, low, close, volume, ts) FROM STDIN"
        ) as copy:
            for symbol, bars in rows.items():
                for i in range(len(bars["ts"])):
                    copy.write_row((
                        symbol, *(float(bars[c][i]) for c in ("open", "high", "low", "close",
                                                               "volume")),
                        epoch + dt.timedelta(microseconds=int(bars["ts"][i]) // 1000),
                    ))


def same_bars(a: dict, b: dict) -> bool:
    return all(np.array_equal(np.asarray(a[c]), np.asarray(b[c])) for c in
               ("ts", "open", "high", "low", "close", "volume"))
