"""A local Parquet catalog of bars: ``root/symbol=S/interval=I/bars.parquet``.

Hive-partitioned by symbol and interval (readable by ``pyarrow.dataset`` and other tools),
one file per (symbol, interval), sorted by ``ts``, in row groups of 10k rows (the default
replay batch) so reads stream. Writes validate, merge with what is stored (a new bar for an
existing ``ts`` replaces it) and replace the file atomically: a failed write leaves the old
file as it was.

>>> import tempfile
>>> import numpy as np
>>> cat = Catalog(tempfile.mkdtemp())
>>> bars = {"ts": np.array([1, 2, 3]) * 10**9, "open": np.ones(3), "high": np.ones(3),
...         "low": np.ones(3), "close": np.array([1.0, 2.0, 3.0]), "volume": np.ones(3)}
>>> cat.write("AAPL", "1d", bars)
3
>>> cat.symbols("1d"), cat.coverage("AAPL", "1d")
(['AAPL'], (1000000000, 3000000000, 3))
>>> cat.read("AAPL", "1d", start=2 * 10**9)["close"].tolist()
[2.0, 3.0]
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from connectors.memory import align
from qmtl.bars import validate_bars
from qmtl.contracts import BAR_COLUMNS

Batch = dict[str, np.ndarray]
ROW_GROUP = 10_000
SCHEMA = pa.schema([("ts", pa.int64())] + [(c, pa.float64()) for c in BAR_COLUMNS if c != "ts"])


class CatalogError(LookupError):
    """A symbol, interval or file the catalog cannot serve (the message says what exists)."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


def default_data_dir() -> Path:
    """``$QMTL_DATA``, or ``~/.qmtl/data``.

    >>> isinstance(default_data_dir(), Path)
    True
    """
    env = os.environ.get("QMTL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".qmtl" / "data"


def _to_batch(table: pa.Table | pa.RecordBatch) -> Batch:
    return {c: table.column(c).to_numpy() for c in BAR_COLUMNS}


class Catalog:
    """The bar catalog under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r})"

    def path(self, symbol: str, interval: str) -> Path:
        """The file that holds ``symbol`` at ``interval``.

        >>> Catalog("/data").path("AAPL", "1d").as_posix()
        '/data/symbol=AAPL/interval=1d/bars.parquet'
        """
        if not symbol or "/" in symbol or symbol.startswith("."):
            raise CatalogError(f"invalid symbol name {symbol!r}")
        return self.root / f"symbol={symbol}" / f"interval={interval}" / "bars.parquet"

    # -- listing ---------------------------------------------------------------------------
    def symbols(self, interval: str | None = None) -> list[str]:
        """Symbols stored (at ``interval``, if given), sorted."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.glob("symbol=*"):
            symbol = d.name.split("=", 1)[1]
            if interval is None or (d / f"interval={interval}" / "bars.parquet").is_file():
                out.append(symbol)
        return sorted(out)

    def intervals(self, symbol: str) -> list[str]:
        """Intervals stored for ``symbol``."""
        base = self.root / f"symbol={symbol}"
        return sorted(
            d.name.split("=", 1)[1]
            for d in base.glob("interval=*")
            if (d / "bars.parquet").is_file()
        )

    def _metadata(self, symbol: str, interval: str) -> pq.FileMetaData | None:
        path = self.path(symbol, interval)
        if not path.is_file():
            return None
        try:
            return pq.ParquetFile(path).metadata
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"corrupt catalog file {path}: {exc}") from None

    def coverage(self, symbol: str, interval: str) -> tuple[int, int, int] | None:
        """``(first ts, last ts, rows)`` stored for ``symbol`` at ``interval``, or None."""
        meta = self._metadata(symbol, interval)
        if meta is None or meta.num_rows == 0:
            return None
        first = meta.row_group(0).column(0).statistics
        last = meta.row_group(meta.num_row_groups - 1).column(0).statistics
        if first is None or last is None or not first.has_min_max:
            ts = self.read(symbol, interval)["ts"]
            return int(ts[0]), int(ts[-1]), len(ts)
        return int(first.min), int(last.max), int(meta.num_rows)

    def entries(self) -> list[tuple[str, str, int, int, int]]:
        """``(symbol, interval, first, last, rows)`` for everything stored."""
        out = []
        for symbol in self.symbols():
            for interval in self.intervals(symbol):
                cov = self.coverage(symbol, interval)
                if cov is not None:
                    out.append((symbol, interval, *cov))
        return out

    def _require(self, symbol: str, interval: str) -> Path:
        path = self.path(symbol, interval)
        if not path.is_file():
            available = ", ".join(self.symbols(interval)) or "none"
            raise CatalogError(
                f"no {interval} bars for {symbol!r} in catalog {self.root}; "
                f"available at {interval}: {available}"
            )
        return path

    # -- reading ---------------------------------------------------------------------------
    def read(
        self, symbol: str, interval: str, start: int | None = None, end: int | None = None
    ) -> Batch:
        """All stored bars of ``symbol`` with ``start <= ts <= end``."""
        path = self._require(symbol, interval)
        try:
            table = pq.read_table(path, schema=SCHEMA)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"corrupt catalog file {path}: {exc}") from None
        if start is not None or end is not None:
            ts = table.column("ts")
            mask = pc.and_(
                pc.greater_equal(ts, start if start is not None else np.iinfo(np.int64).min),
                pc.less_equal(ts, end if end is not None else np.iinfo(np.int64).max),
            )
            table = table.filter(mask)
        return _to_batch(table)

    def _stream(
        self, symbol: str, interval: str, start: int | None, end: int | None, chunk: int
    ) -> Iterator[Batch]:
        path = self._require(symbol, interval)
        try:
            # one row group at a time, without pre-buffering (which reads the whole file up
            # front): memory depends on the row group size, not on the length of history
            reader = pq.ParquetFile(path, pre_buffer=False)
            meta = reader.metadata
            for i in range(meta.num_row_groups):
                stats = meta.row_group(i).column(0).statistics
                if stats is not None and stats.has_min_max:
                    if start is not None and stats.max < start:
                        continue
                    if end is not None and stats.min > end:
                        return
                table = reader.read_row_group(i, columns=list(BAR_COLUMNS), use_threads=False)
                batch = _to_batch(table)
                ts = batch["ts"]
                lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
                hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="right"))
                for a in range(lo, hi, chunk):
                    yield {k: v[a : min(a + chunk, hi)] for k, v in batch.items()}
                if end is not None and hi < len(ts):
                    return
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"corrupt catalog file {path}: {exc}") from None

    def iter_batches(
        self,
        symbols: Sequence[str],
        interval: str,
        start: int | None = None,
        end: int | None = None,
        batch_size: int | Sequence[int] = 10_000,
    ) -> Iterator[tuple[str, Batch]]:
        """Stream ``(symbol, batch)`` items, time-aligned across ``symbols``, without loading
        whole histories (see :func:`connectors.memory.align`)."""
        for s in symbols:
            self._require(s, interval)
        chunk = max(ROW_GROUP, max([batch_size] if isinstance(batch_size, int) else batch_size))
        streams = {s: self._stream(s, interval, start, end, chunk) for s in symbols}
        return align(streams, batch_size)

    # -- writing ---------------------------------------------------------------------------
    def write(self, symbol: str, interval: str, batch: Batch) -> int:
        """Validate ``batch``, merge it into what is stored, write atomically; return rows now
        stored. Bars are sorted by ``ts`` first; a bar for a stored ``ts`` replaces it."""
        from qmtl.intervals import interval_seconds

        interval_seconds(interval)
        order = np.argsort(np.asarray(batch["ts"]), kind="stable")
        incoming = {c: np.asarray(batch[c])[order] for c in BAR_COLUMNS if c in batch}
        validate_bars(symbol, incoming)
        path = self.path(symbol, interval)
        if path.is_file():
            stored = self.read(symbol, interval)
            merged = {c: np.concatenate([stored[c], incoming[c]]) for c in BAR_COLUMNS}
            # keep the last occurrence of each ts (the incoming bar wins)
            ts = merged["ts"]
            rev_unique = np.unique(ts[::-1], return_index=True)[1]
            keep = np.sort(len(ts) - 1 - rev_unique)
            keep = keep[np.argsort(ts[keep], kind="stable")]
            incoming = {c: v[keep] for c, v in merged.items()}
        table = pa.table(
            {c: pa.array(incoming[c], type=SCHEMA.field(c).type) for c in BAR_COLUMNS},
            schema=SCHEMA,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".bars.", suffix=".tmp")
        os.close(fd)
        try:
            pq.write_table(table, tmp, row_group_size=ROW_GROUP)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return table.num_rows
