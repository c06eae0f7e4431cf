"""Backfill origins: where bars come from when no local layer has them.

An origin is any object with a ``name`` and ``fetch(symbol, interval, start, end)`` that yields
bar batches (time-ordered chunks) with ``start <= ts <= end``, and raises
:class:`SymbolNotFound` when it has no such symbol at all. Two come with QMTL: a folder of
CSV/Parquet files (:class:`FolderOrigin`) and ccxt for crypto exchanges
(:class:`connectors.data.ccxt_origin.CcxtOrigin`, extra ``[ccxt]``).

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> (root / "1d").mkdir()
>>> _ = (root / "1d" / "AAPL.csv").write_text(
...     "date,open,high,low,close\\n2024-01-02,1,2,0.5,1.5\\n2024-01-03,2,3,1,2.5\\n")
>>> origin = FolderOrigin(root)
>>> from qmtl.core.times import parse_time
>>> [b["close"].tolist() for b in origin.fetch("AAPL", "1d", parse_time("2024-01-03"),
...                                              parse_time("2024-12-31"))]
[[2.5]]
>>> origin.fetch("MSFT", "1d", 0, 1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
connectors.data.origins.SymbolNotFound: origin folder:... has no 1d bars for 'MSFT' (looked for ...)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from connectors.data.catalog import Catalog, CatalogError
from connectors.data.csv_import import read_bars_file
from connectors.data.parts import MANIFEST
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError


class SymbolNotFound(QmtlError, LookupError):
    """An origin has no bars at all for a (symbol, interval); the message says where it looked."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class OriginError(QmtlError, OSError):
    """An origin failed while fetching; the message names the origin, symbol and range."""


@runtime_checkable
class Origin(Protocol):
    """What the data provider needs of a backfill origin."""

    name: str

    def fetch(self, symbol: str, interval: str, start: int, end: int) -> Iterator[Batch]:
        """Bars of ``symbol`` at ``interval`` with ``start <= ts <= end``, in time order."""
        ...


PATTERNS: tuple[str, ...] = (
    "{interval}/{symbol}",
    "{symbol}_{interval}",
    "symbol={symbol}/interval={interval}/bars",
)
"""Where :class:`FolderOrigin` looks, in order, each with ``.parquet``, ``.csv``, ``.csv.gz``."""
EXTENSIONS: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")


class FolderOrigin:
    """Bars from a folder of files: ``ROOT/1m/BTC-USD.csv``, ``ROOT/BTC-USD_1m.parquet``, or
    another QMTL catalog (``ROOT/symbol=S/interval=I/``, of parts or a single ``bars.parquet``)
    (columns as for ``qmtl data import``). Files are read whole, sorted by time and served in
    chunks of ``chunk_rows``.

    >>> import tempfile
    >>> from connectors.data.synthetic import generate_bars
    >>> other = Catalog(tempfile.mkdtemp())
    >>> _ = other.write("X", "1d", generate_bars(5, interval="1d"))
    >>> sum(len(b["ts"]) for b in FolderOrigin(other.root).fetch("X", "1d", 0, 2**62))
    5
    """

    def __init__(self, root: str | Path, chunk_rows: int = 100_000) -> None:
        self.root = Path(root).expanduser()
        self.chunk_rows = int(chunk_rows)
        self.name = f"folder:{self.root}"
        self._last: tuple[tuple[Path, int, int], Batch] | None = None  # the last file parsed
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")

    def __repr__(self) -> str:
        return f"FolderOrigin({str(self.root)!r})"

    def candidates(self, symbol: str, interval: str) -> list[Path]:
        """Every path looked at for ``symbol`` at ``interval``, in order."""
        return [
            self.root / (p.format(symbol=symbol, interval=interval) + ext)
            for p in PATTERNS
            for ext in EXTENSIONS
        ]

    def locate(self, symbol: str, interval: str) -> Path:
        """The file holding ``symbol`` at ``interval``, or :class:`SymbolNotFound`."""
        if not symbol or "/" in symbol or os.sep in symbol or symbol.startswith("."):
            raise SymbolNotFound(f"origin {self.name}: invalid symbol name {symbol!r}")
        manifest = self.root / f"symbol={symbol}" / f"interval={interval}" / MANIFEST
        if manifest.is_file():  # a catalog of parts
            return manifest
        paths = self.candidates(symbol, interval)
        for path in paths:
            if path.is_file():
                return path
        shown = ", ".join(str(p.relative_to(self.root)) for p in paths[::len(EXTENSIONS)])
        raise SymbolNotFound(
            f"origin {self.name} has no {interval} bars for {symbol!r} "
            f"(looked for {shown} with {'/'.join(EXTENSIONS)})"
        )

    def span(self, symbol: str, interval: str) -> tuple[int, int] | None:
        """First and last bar time the origin has for ``symbol``, or None if no bars."""
        ts = self._read(symbol, interval)["ts"]
        return (int(ts[0]), int(ts[-1])) if len(ts) else None

    def _read(self, symbol: str, interval: str) -> Batch:
        path = self.locate(symbol, interval)
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size)
        held = self._last
        if held is not None and held[0] == key:  # several missing ranges of one file: parse once
            return held[1]
        try:
            if path.name == MANIFEST:
                bars = Catalog(self.root).read(symbol, interval)
            else:
                bars = read_bars_file(path)
        except (ValueError, CatalogError) as exc:
            raise OriginError(f"origin {self.name}: {exc}") from None
        order = np.argsort(bars["ts"], kind="stable")
        bars = {k: v[order] for k, v in bars.items()}
        self._last = (key, bars)
        return bars

    def fetch(self, symbol: str, interval: str, start: int, end: int) -> Iterator[Batch]:
        """Chunks of the file's bars with ``start <= ts <= end`` (raises
        :class:`SymbolNotFound` at once, not on first iteration, for an unknown symbol)."""
        self.locate(symbol, interval)
        return self._chunks(symbol, interval, start, end)

    def _chunks(self, symbol: str, interval: str, start: int, end: int) -> Iterator[Batch]:
        bars = self._read(symbol, interval)
        ts = bars["ts"]
        lo = int(np.searchsorted(ts, start, side="left"))
        hi = int(np.searchsorted(ts, end, side="right"))
        for a in range(lo, hi, self.chunk_rows):
            b = min(hi, a + self.chunk_rows)
            yield {k: v[a:b] for k, v in bars.items()}
