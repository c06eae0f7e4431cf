"""A local Parquet catalog of bars: ``root/symbol=S/interval=I/`` holds each history.

Hive-partitioned by symbol and interval (readable by ``pyarrow.dataset`` and other tools).
Each (symbol, interval) folder holds its bars sorted by ``ts`` in Parquet **parts** of at
most ``PART_GROUPS`` row groups of ``ROW_GROUP`` rows (the default replay batch), and a
manifest listing the parts and the folder's **coverage**: the time ranges for which it holds
every bar there is (a range fetched from an origin may legitimately hold no bars, e.g. a
weekend). A reader opens one part at a time, so the Parquet metadata it holds is bounded by the
part whatever the length of history (see :mod:`connectors.data.parts`).

Writes validate, merge with what is stored (a new bar for an existing ``ts`` replaces it) and
commit by replacing the manifest atomically: bars and coverage change together or not at all,
and a failed write leaves what was stored as it was. Parts wholly before the new bars are
kept as they are; the rest is rewritten. Writers of one (symbol, interval) are serialized by
:meth:`Catalog.lock` (threads, and processes through ``filelock``). A catalog written before
parts (one ``bars.parquet`` per folder, coverage in its metadata) is read as it is and
upgraded in place by the next write of the folder.

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
>>> cat.write("AAPL", "1d", {k: v[:0] for k, v in bars.items()}, covered=[(5 * 10**9, 9 * 10**9)])
3
>>> cat.covered("AAPL", "1d").ranges
[(1000000000, 3000000000), (5000000000, 9000000000)]
"""

from __future__ import annotations

import contextlib
import difflib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from filelock import FileLock

from connectors.data import parts as layout
from connectors.data.coverage import Coverage
from connectors.data.memory import align
from connectors.data.parts import (
    COVERAGE_KEY,
    SCHEMA,
    WRITE_OPTIONS,
    CatalogError,
    Manifest,
    Part,
    row_groups,
    ts_bounds,
)
from qmtl.core.bars import Batch, validate_bars
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_seconds

__all__ = [
    "COVERAGE_KEY",
    "PART_GROUPS",
    "ROW_GROUP",
    "SCHEMA",
    "WRITE_OPTIONS",
    "Catalog",
    "CatalogError",
    "default_data_dir",
]

ROW_GROUP = 10_000
PART_GROUPS = 16
"""Row groups a part holds at most (160k bars with ``ROW_GROUP`` rows: about 80 KB of parsed
metadata per open part, whatever the length of history; 1M bars are 7 parts)."""
REOPEN_TRIES = 8
"""Times a read follows the manifest again when a part it was about to open was replaced by a
write in the meantime."""


def default_data_dir() -> Path:
    """``$QMTL_DATA``, or ``~/.qmtl/data``.

    >>> isinstance(default_data_dir(), Path)
    True
    """
    env = os.environ.get("QMTL_DATA")
    return Path(env).expanduser() if env else Path.home() / ".qmtl" / "data"


def did_you_mean(name: str, names: Sequence[str]) -> str:
    """``"did you mean 'X'? "`` for the stored names closest to a mistyped one (empty when
    none is close).

    >>> did_you_mean("GOOGL", ["AAPL", "GOOG", "MSFT"])
    "did you mean 'GOOG'? "
    >>> did_you_mean("ZZZ", ["AAPL"])
    ''
    """
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if not close:
        close = [n for n in names if n.lower() == name.lower()]
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def _to_batch(table: pa.Table | pa.RecordBatch) -> Batch:
    return {c: table.column(c).to_numpy() for c in BAR_COLUMNS}


def _corrupt(path: Path, exc: BaseException) -> CatalogError:
    return CatalogError(f"corrupt catalog file {path}: {exc}")


def _agree(folder: Path, part: Part, meta: pq.FileMetaData) -> None:
    """Raise :class:`CatalogError` when the footer of ``part`` is not what the manifest says
    (see :func:`connectors.data.parts.mismatch`)."""
    wrong = layout.mismatch(part, meta)
    if wrong is not None:
        raise CatalogError(f"corrupt catalog manifest {folder / layout.MANIFEST}: {wrong}")


class Catalog:
    """The bar catalog under ``root`` (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self._locks: dict[tuple[str, str], tuple[threading.RLock, FileLock]] = {}
        self._locks_guard = threading.Lock()
        # what a folder's manifest says, by the manifest's identity (a write replaces it, so
        # it changes): a plan asks several times per symbol
        self._facts: dict[tuple[Path, str], tuple[Any, Any]] = {}

    def __repr__(self) -> str:
        return f"Catalog({str(self.root)!r})"

    def folder(self, symbol: str, interval: str) -> Path:
        """The folder that holds ``symbol`` at ``interval``.

        >>> Catalog("/data").folder("AAPL", "1d").as_posix()
        '/data/symbol=AAPL/interval=1d'
        """
        if not symbol or "/" in symbol or symbol.startswith("."):
            raise CatalogError(f"invalid symbol name {symbol!r}")
        return self.root / f"symbol={symbol}" / f"interval={interval}"

    def parts(self, symbol: str, interval: str) -> list[Path]:
        """The files holding ``symbol`` at ``interval``, in time order (empty: none).

        >>> import tempfile
        >>> from connectors.data.synthetic import generate_bars
        >>> cat = Catalog(tempfile.mkdtemp())
        >>> _ = cat.write("A", "1m", generate_bars(400_000, interval="1m"))
        >>> len(cat.parts("A", "1m")), cat.path("A", "1m") == cat.parts("A", "1m")[0]
        (3, True)
        """
        manifest = self.manifest(symbol, interval)
        folder = self.folder(symbol, interval)
        return [] if manifest is None else [folder / p.file for p in manifest.parts]

    def path(self, symbol: str, interval: str) -> Path:
        """The first file holding ``symbol`` at ``interval`` (the only one while the history
        fits one part; see :meth:`parts`); raises :class:`CatalogError` when none is."""
        found = self.parts(symbol, interval)
        if not found:
            self._require(symbol, interval)
            raise CatalogError(
                f"no {interval} bars for {symbol!r} in catalog {self.root} "
                "(its folder records coverage only)"
            )
        return found[0]

    def nbytes(self, symbol: str, interval: str) -> int:
        """Bytes the files of ``symbol`` at ``interval`` take on disk."""
        return sum(p.stat().st_size for p in self.parts(symbol, interval))

    # -- listing ---------------------------------------------------------------------------
    def symbols(self, interval: str | None = None) -> list[str]:
        """Symbols stored (at ``interval``, if given), sorted."""
        if not self.root.is_dir():
            return []
        out = []
        for d in self.root.glob("symbol=*"):
            if any(layout.stored(f) for f in d.glob(f"interval={interval or '*'}")):
                out.append(d.name.split("=", 1)[1])
        return sorted(out)

    def intervals(self, symbol: str) -> list[str]:
        """Intervals stored for ``symbol``."""
        base = self.root / f"symbol={symbol}"
        return sorted(d.name.split("=", 1)[1] for d in base.glob("interval=*") if layout.stored(d))

    def _metadata(self, symbol: str, interval: str) -> Manifest | None:
        """The folder's manifest, read now (None: nothing stored)."""
        return layout.load(self.folder(symbol, interval))

    def _memo(self, symbol: str, interval: str, what: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` (the folder's ``what``), remembered while its manifest stays the
        same one."""
        folder = self.folder(symbol, interval)
        key = layout.identity(folder)
        if key is None:
            return compute()
        known = self._facts.get((folder, what))
        if known is None or known[0] != key:
            known = (key, compute())
            self._facts[(folder, what)] = known
        return known[1]

    def manifest(self, symbol: str, interval: str) -> Manifest | None:
        """What is stored for ``symbol`` at ``interval``: parts and coverage (None: nothing)."""
        return self._memo(symbol, interval, "manifest", lambda: self._metadata(symbol, interval))

    def coverage(self, symbol: str, interval: str) -> tuple[int, int, int] | None:
        """``(first ts, last ts, rows)`` stored for ``symbol`` at ``interval``, or None."""
        manifest = self.manifest(symbol, interval)
        if manifest is None or not manifest.parts:
            return None
        return manifest.parts[0].first, manifest.parts[-1].last, manifest.rows

    def covered(self, symbol: str, interval: str) -> Coverage:
        """The time ranges for which the folder holds every bar (exact ns ranges); empty
        when nothing is stored. Legacy files without recorded coverage cover their first to
        last bar."""
        manifest = self.manifest(symbol, interval)
        return Coverage() if manifest is None else Coverage(manifest.coverage)

    def entries(self) -> list[tuple[str, str, int, int, int]]:
        """``(symbol, interval, first, last, rows)`` for everything stored."""
        out = []
        for symbol in self.symbols():
            for interval in self.intervals(symbol):
                cov = self.coverage(symbol, interval)
                if cov is not None:
                    out.append((symbol, interval, *cov))
        return out

    def _require(self, symbol: str, interval: str) -> Manifest:
        manifest = self.manifest(symbol, interval)
        if manifest is None:
            stored = self.symbols(interval)
            available = ", ".join(stored) or "none"
            raise CatalogError(
                f"no {interval} bars for {symbol!r} in catalog {self.root}; "
                f"{did_you_mean(symbol, stored)}available at {interval}: {available}"
            )
        return manifest

    def verify(self, symbol: str, interval: str) -> None:
        """Read the footer of every part of ``symbol`` at ``interval``: raises
        :class:`CatalogError` naming the first that is not readable Parquet, or whose rows,
        first or last bar are not what the manifest lists (a fetch is not made on top of a
        file the write that follows could not merge with).

        >>> import tempfile
        >>> Catalog(tempfile.mkdtemp()).verify("A", "1d")  # nothing stored: nothing to check
        """
        manifest = self.manifest(symbol, interval)
        folder = self.folder(symbol, interval)
        for part in manifest.parts if manifest is not None else []:
            path = folder / part.file
            try:
                meta = pq.read_metadata(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise _corrupt(path, exc) from None
            _agree(folder, part, meta)

    @contextlib.contextmanager
    def lock(self, symbol: str, interval: str) -> Iterator[None]:
        """Hold the write lock of ``symbol`` at ``interval``: reentrant in a thread, exclusive
        across threads and (a ``filelock`` on ``.lock`` in the folder) across processes.

        >>> import tempfile
        >>> cat = Catalog(tempfile.mkdtemp())
        >>> with cat.lock("A", "1d"), cat.lock("A", "1d"):
        ...     pass
        """
        key = (symbol, interval)
        folder = self.folder(symbol, interval)
        with self._locks_guard:
            held = self._locks.get(key)
            if held is None:
                held = (threading.RLock(), FileLock(folder / ".lock", thread_local=False))
                self._locks[key] = held
        rlock, flock = held
        with rlock:
            folder.mkdir(parents=True, exist_ok=True)
            with flock:
                yield

    # -- reading ---------------------------------------------------------------------------
    def _open(
        self, symbol: str, interval: str, start: int | None, end: int | None
    ) -> Iterator[tuple[Path, pq.ParquetFile, int | None]]:
        """The parts that may hold ``[start, end]``, opened one at a time (each closed when
        the next is asked for), as ``(path, file, from)``: the caller serves the part's bars
        with ``from <= ts <= end``. A part replaced by a write since the manifest was read is
        not an error: the read goes on in the new manifest after the bars already served."""
        folder = self.folder(symbol, interval)
        todo = self._require(symbol, interval).select(start, end)
        lo, tries = start, 0
        while todo:
            part, path = todo[0], folder / todo[0].file
            try:
                file = pq.ParquetFile(path, pre_buffer=False)
            except FileNotFoundError:
                tries += 1
                fresh = self._metadata(symbol, interval)
                if fresh is None or tries > REOPEN_TRIES:
                    raise CatalogError(
                        f"catalog file {path} went away while read and the "
                        "folder kept changing; read again"
                    ) from None
                todo = fresh.select(lo, end)
                continue
            except (pa.ArrowInvalid, OSError) as exc:
                raise _corrupt(path, exc) from None
            try:
                _agree(folder, part, file.metadata)
            except CatalogError:
                file.close()
                raise
            todo.pop(0)
            try:
                yield path, file, lo
            finally:
                file.close()
            lo = part.last + 1 if lo is None else max(lo, part.last + 1)

    def _read_table(
        self, symbol: str, interval: str, start: int | None, end: int | None, columns: list[str]
    ) -> pa.Table:
        tables = []
        for path, f, lo in self._open(symbol, interval, start, end):
            try:
                groups = row_groups(f.metadata, lo, end)
                if not groups:
                    continue
                table = f.read_row_groups(groups, columns=columns)
            except (pa.ArrowInvalid, OSError) as exc:
                raise _corrupt(path, exc) from None
            schema = pa.schema([SCHEMA.field(c) for c in columns])
            if not table.schema.equals(schema):
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, ValueError) as exc:
                    raise CatalogError(f"unexpected columns in {path}: {exc}") from None
            if lo is not None or end is not None:
                a, b = ts_bounds(table.column("ts").to_numpy(), lo, end)
                table = table.slice(a, b - a)
            tables.append(table)
        if not tables:
            return pa.schema([SCHEMA.field(c) for c in columns]).empty_table()
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    def read(
        self, symbol: str, interval: str, start: int | None = None, end: int | None = None
    ) -> Batch:
        """All stored bars of ``symbol`` with ``start <= ts <= end`` (only the parts and row
        groups that can hold them are read; the range is cut without a copy)."""
        return _to_batch(self._read_table(symbol, interval, start, end, list(BAR_COLUMNS)))

    def read_column(
        self,
        symbol: str,
        interval: str,
        column: str,
        start: int | None = None,
        end: int | None = None,
    ) -> np.ndarray:
        """One column of the stored bars with ``start <= ts <= end`` (e.g. ``ts`` to count).

        >>> import tempfile
        >>> cat = Catalog(tempfile.mkdtemp())
        >>> one = {c: np.ones(2) for c in ("open", "high", "low", "close", "volume")}
        >>> _ = cat.write("A", "1d", {"ts": np.array([1, 2]), **one})
        >>> cat.read_column("A", "1d", "ts", start=2).tolist()
        [2]
        """
        if column not in SCHEMA.names:
            raise CatalogError(f"no column {column!r}: the catalog has {', '.join(SCHEMA.names)}")
        columns = ["ts"] if column == "ts" else ["ts", column]
        return self._read_table(symbol, interval, start, end, columns).column(column).to_numpy()

    def _stream(
        self, symbol: str, interval: str, start: int | None, end: int | None, chunk: int
    ) -> Iterator[Batch]:
        # one row group at a time from one open part at a time: the parsed metadata held is
        # that of one part (at most PART_GROUPS row groups), not of the whole history; only
        # the parts and row groups that may hold [start, end] are read
        for path, f, lo in self._open(symbol, interval, start, end):
            try:
                for i in row_groups(f.metadata, lo, end):
                    batch = _to_batch(
                        f.read_row_group(i, columns=list(BAR_COLUMNS), use_threads=False)
                    )
                    a, b = ts_bounds(batch["ts"], lo, end)
                    for x in range(a, b, chunk):
                        yield {k: v[x : min(x + chunk, b)] for k, v in batch.items()}
                    if end is not None and b < len(batch["ts"]):
                        return
            except (pa.ArrowInvalid, OSError) as exc:
                raise _corrupt(path, exc) from None

    def iter_batches(
        self,
        symbols: Sequence[str],
        interval: str,
        start: int | None = None,
        end: int | None = None,
        batch_size: int | Sequence[int] = 10_000,
    ) -> Iterator[tuple[str, Batch]]:
        """Stream ``(symbol, batch)`` items, time-aligned across ``symbols``, without loading
        whole histories (see :func:`connectors.data.memory.align`)."""
        for s in symbols:
            self._require(s, interval)
        chunk = max(ROW_GROUP, max([batch_size] if isinstance(batch_size, int) else batch_size))
        streams = {s: self._stream(s, interval, start, end, chunk) for s in symbols}
        return align(streams, batch_size)

    # -- writing ---------------------------------------------------------------------------
    def write(
        self,
        symbol: str,
        interval: str,
        batch: Batch,
        covered: Iterable[tuple[int, int]] | None = None,
        replace: bool = False,
    ) -> int:
        """Validate ``batch``, merge it into what is stored, write atomically; return rows now
        stored. Bars are sorted by ``ts`` first; a bar for a stored ``ts`` replaces it.

        ``covered`` adds ranges known to be complete (a fetched range, even with no bars in
        it); the span of ``batch`` is always added. ``replace`` drops what was stored (bars
        and coverage) instead of merging."""
        interval_seconds(interval)
        order = np.argsort(np.asarray(batch["ts"]), kind="stable")
        incoming = {c: np.asarray(batch[c])[order] for c in BAR_COLUMNS if c in batch}
        validate_bars(symbol, incoming)
        folder = self.folder(symbol, interval)
        part_rows = PART_GROUPS * ROW_GROUP
        with self.lock(symbol, interval):
            old = self._metadata(symbol, interval)
            coverage = Coverage() if replace or old is None else Coverage(old.coverage)
            if len(incoming["ts"]):
                coverage.add(int(incoming["ts"][0]), int(incoming["ts"][-1]))
            for a, b in covered or ():
                coverage.add(int(a), int(b))
            keep: list[Part] = []
            if old is not None and not replace:
                if not old.legacy:  # full parts wholly before the new bars stay as they are
                    first = int(incoming["ts"][0]) if len(incoming["ts"]) else None
                    for p in old.parts:
                        if p.rows < part_rows or (first is not None and p.last >= first):
                            break
                        keep.append(p)
                after = keep[-1].last + 1 if keep else None
                stored = self.read(symbol, interval, start=after) if old.parts else None
                if stored is not None and len(stored["ts"]):
                    merged = {c: np.concatenate([stored[c], incoming[c]]) for c in BAR_COLUMNS}
                    # keep the last occurrence of each ts (the incoming bar wins)
                    ts = merged["ts"]
                    rev_unique = np.unique(ts[::-1], return_index=True)[1]
                    take = np.sort(len(ts) - 1 - rev_unique)
                    take = take[np.argsort(ts[take], kind="stable")]
                    incoming = {c: v[take] for c, v in merged.items()}
            manifest = layout.commit(
                folder, layout.table_of(incoming), coverage.ranges, keep, old, part_rows, ROW_GROUP
            )
        return manifest.rows
