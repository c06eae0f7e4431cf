"""Seamless data: bars for (symbols, interval, start, end) from the cheapest layer that has them.

Layers, in order: an in-memory LRU cache (bounded by bytes) -> the local Parquet catalog ->
QuestDB (shared history, optional) -> a backfill origin (a folder of files, ccxt; optional).
Whatever QuestDB or the origin supplies is written to the catalog with the range it covers, so
asking twice fetches nothing the second time, and a partial hit fetches only the missing
ranges. Each missing range is one transaction: fetched whole, then written to the catalog in
one atomic replace (bars and coverage together); an origin failing half-way writes nothing.
Requests for the same (symbol, interval) are serialized by the catalog's lock (threads and
processes), and each re-checks coverage under it, so concurrent requests for the same
missing range trigger one fetch.

A strategy may ask for an interval the catalog does not hold but a finer one does (``1h``
over ``1m``): the provider resamples (:mod:`dataflows.resample`), emitting closed buckets only.

>>> import tempfile, pathlib
>>> from connectors.data.catalog import Catalog
>>> from connectors.data.origins import FolderOrigin
>>> from connectors.data.synthetic import generate_bars
>>> from qmtl.core.times import parse_time
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> full = generate_bars(100, interval="1d", start="2024-01-01", seed=1)
>>> catalog = Catalog(root / "catalog")
>>> _ = catalog.write("AAPL", "1d", {k: v[:50] for k, v in full.items()})  # half of it
>>> (root / "origin" / "1d").mkdir(parents=True)
>>> import pyarrow as pa, pyarrow.parquet as pq
>>> pq.write_table(pa.table(full), root / "origin" / "1d" / "AAPL.parquet")
>>> data = SeamlessDataProvider(catalog, origin=FolderOrigin(root / "origin"))
>>> bars = data.read("AAPL", "1d", parse_time("2024-01-01"), parse_time("2024-04-09"))
>>> len(bars["ts"]), data.stats["backfills"], data.coverage("AAPL", "1d").ranges == [
...     (int(full["ts"][0]), parse_time("2024-04-09"))]
(100, 1, True)
>>> _ = data.read("AAPL", "1d", parse_time("2024-01-01"), parse_time("2024-04-09"))
>>> data.stats["backfills"], data.stats["cache_hits"]
(1, 1)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from connectors.data.cache import DEFAULT_CACHE_BYTES, BarCache
from connectors.data.catalog import Catalog, CatalogError, default_data_dir
from connectors.data.coverage import Coverage
from connectors.data.memory import align
from connectors.data.origins import Origin, OriginError, SymbolNotFound
from connectors.data.prefetch import Demux, Prefetcher
from qmtl.core.bars import Batch, concat_batches, empty_batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.errors import QmtlError
from qmtl.core.intervals import INTERVALS, interval_ns
from qmtl.core.times import format_ts

BAR_BYTES = 48
"""Bytes per bar in memory (int64 ts + five float64)."""


class DataNotFound(QmtlError, LookupError):
    """No layer has the bars asked for; the message names the symbol, interval, range and
    what every layer said."""

    def __init__(self, symbol: str, interval: str, start: int | None, end: int | None,
                 looked: list[str], headline: str | None = None) -> None:
        self.symbol, self.interval, self.start, self.end = symbol, interval, start, end
        self.looked = looked
        head = headline or f"no {interval} bars for {symbol!r} in {span(start, end)}"
        super().__init__(f"{head}; looked in: " + "; ".join(looked))

    def __str__(self) -> str:
        return str(self.args[0])


class BackfillError(QmtlError, OSError):
    """A backfill origin or QuestDB failed on a range; nothing of that range was written."""


def _fmt(ns: int | None) -> str:
    return "-" if ns is None else format_ts(ns)


def span(a: int | None, b: int | None) -> str:
    """A closed range for people: an end 1 ns before a whole second reads "before" it, a
    start 1 ns after one reads "after" it.

    >>> span(0, 60 * 10**9 - 1)
    '1970-01-01T00:00:00Z .. before 1970-01-01T00:01:00Z'
    >>> span(60 * 10**9 + 1, 120 * 10**9)
    'after 1970-01-01T00:01:00Z .. 1970-01-01T00:02:00Z'
    """
    left = (f"after {_fmt(a - 1)}" if a is not None and (a - 1) % 10**9 == 0 and a % 10**9
            else _fmt(a))
    right = (f"before {_fmt(b + 1)}" if b is not None and (b + 1) % 10**9 == 0 and b % 10**9
             else _fmt(b))
    return f"{left} .. {right}"


class FetchProgress(Protocol):
    """Progress of one fetch from QuestDB or an origin (the CLI shows a bar)."""

    def begin(self, label: str, total: int | None) -> None:
        """A fetch starts: ``label`` says what; ``total`` is the bars expected, if known."""

    def advance(self, rows: int) -> None:
        """``rows`` more bars arrived."""

    def end(self) -> None:
        """The fetch finished (or failed)."""


class NullProgress:
    """Reports nothing.

    >>> NullProgress().begin("x", 1)
    """

    def begin(self, label: str, total: int | None) -> None:
        """Ignored."""

    def advance(self, rows: int) -> None:
        """Ignored."""

    def end(self) -> None:
        """Ignored."""


@dataclass
class Fetch:
    """One fetch a provider made: which layer, what, and how many bars came back."""

    layer: str
    symbol: str
    interval: str
    start: int
    end: int
    rows: int

    def __str__(self) -> str:
        return (f"{self.layer}: {self.rows:,} {self.interval} bars of {self.symbol} "
                f"for {span(self.start, self.end)}")


def parse_bytes(text: str | int) -> int:
    """``"512MiB"``, ``"2GB"``, ``"1e6"`` or an int -> bytes.

    >>> parse_bytes("512MiB"), parse_bytes("1GB"), parse_bytes(10)
    (536870912, 1000000000, 10)
    """
    if isinstance(text, int):
        return text
    s = text.strip().lower().replace(" ", "")
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30, "kb": 10**3, "mb": 10**6, "gb": 10**9,
             "k": 2**10, "m": 2**20, "g": 2**30, "b": 1}
    for suffix, mult in units.items():
        if s.endswith(suffix):
            return int(float(s[: -len(suffix)]) * mult)
    try:
        return int(float(s))
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a size: use e.g. 512MiB or 2GB") from None


@dataclass
class _Plan:
    """What serving one (symbol, interval, range) takes: the source interval and range."""

    symbol: str
    interval: str
    start: int
    end: int
    source: str  # the stored interval the bars come from (== interval unless resampled)
    src_start: int = 0
    src_end: int = 0
    notes: list[str] = field(default_factory=list)


class SeamlessDataProvider:
    """Bars from cache -> catalog -> QuestDB -> backfill origin (see the module docstring).

    ``catalog``: a :class:`Catalog` or folder (default ``$QMTL_DATA`` or ``~/.qmtl/data``);
    ``questdb``: a reader with ``span``/``iter_pages``
    (:class:`connectors.data.questdb.QuestDBReader`);
    ``origin``: a backfill origin; ``writer``: where backfilled bars are also written
    (:class:`connectors.data.questdb.QuestDBWriter`); ``cache_bytes``: the cache bound;
    ``progress``: a :class:`FetchProgress`; ``clock``: now in ns (open-ended requests to an
    origin end there).
    """

    def __init__(
        self,
        catalog: Catalog | str | Path | None = None,
        *,
        questdb: Any = None,
        origin: Origin | None = None,
        writer: Any = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        progress: FetchProgress | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if isinstance(catalog, Catalog):
            self.catalog = catalog
        else:
            self.catalog = Catalog(catalog if catalog is not None else default_data_dir())
        self.questdb = questdb
        self.origin = origin
        self.writer = writer
        self.cache = BarCache(cache_bytes)
        self.progress: FetchProgress = progress or NullProgress()
        self.clock = clock
        self.fetches: list[Fetch] = []
        self.notes: list[str] = []
        self._stats = {"cache_hits": 0, "catalog_reads": 0, "questdb_reads": 0, "backfills": 0,
                       "backfill_rows": 0, "resampled": 0}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        layers = [f"cache {self.cache.max_bytes // 2**20} MiB", f"catalog {self.catalog.root}"]
        if self.questdb is not None:
            layers.append(getattr(self.questdb, "name", "questdb"))
        if self.origin is not None:
            layers.append(self.origin.name)
        return f"SeamlessDataProvider({' -> '.join(layers)})"

    @classmethod
    def from_env(
        cls,
        catalog: Catalog | str | Path | None = None,
        *,
        origin: Origin | str | None = None,
        questdb: Any = None,
        progress: FetchProgress | None = None,
        env: dict[str, str] | None = None,
    ) -> SeamlessDataProvider:
        """The provider the environment configures; arguments given here win.

        ``QMTL_DATA`` (catalog folder), ``QMTL_ORIGIN`` (``folder:PATH`` or ``ccxt:EXCHANGE``),
        ``QMTL_QUESTDB`` (PG-wire URL of QuestDB to read), ``QMTL_QUESTDB_ILP`` (``questdb``
        client configuration to write backfilled bars to), ``QMTL_CACHE_BYTES`` (e.g. 1GiB).

        >>> p = SeamlessDataProvider.from_env("/tmp/x", env={"QMTL_ORIGIN": "folder:/srv/bars"})
        >>> p.origin.name, p.questdb is None
        ('folder:/srv/bars', True)
        """
        from connectors.data.origins import origin_from_spec

        e = os.environ if env is None else env
        if isinstance(origin, str):
            origin = origin_from_spec(origin)
        elif origin is None and e.get("QMTL_ORIGIN"):
            origin = origin_from_spec(e["QMTL_ORIGIN"])
        if isinstance(questdb, str):
            from connectors.data.questdb import QuestDBReader

            questdb = QuestDBReader(questdb)
        elif questdb is None and e.get("QMTL_QUESTDB"):
            from connectors.data.questdb import QuestDBReader

            questdb = QuestDBReader(e["QMTL_QUESTDB"])
        writer = None
        if e.get("QMTL_QUESTDB_ILP"):
            from connectors.data.questdb import QuestDBWriter

            writer = QuestDBWriter(e["QMTL_QUESTDB_ILP"])
        size = parse_bytes(e["QMTL_CACHE_BYTES"]) if e.get("QMTL_CACHE_BYTES") else None
        if catalog is None and e.get("QMTL_DATA"):
            catalog = Path(e["QMTL_DATA"]).expanduser()
        return cls(catalog, questdb=questdb, origin=origin, writer=writer,
                   cache_bytes=size if size is not None else DEFAULT_CACHE_BYTES,
                   progress=progress)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``cache_hits``, ``catalog_reads``, ``questdb_reads``, ``backfills`` (origin
        fetch calls), ``backfill_rows``, ``resampled`` (bars made by resampling)."""
        with self._lock:
            return dict(self._stats)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._stats[name] += n

    # -- what is where ---------------------------------------------------------------------
    def coverage(self, symbol: str, interval: str) -> Coverage:
        """The ranges known complete for ``symbol`` at ``interval`` (cache and catalog; for an
        interval served by resampling, the buckets its source covers)."""
        source = self._source_interval(symbol, interval)
        if source == interval:
            cov = self.catalog.covered(symbol, interval)
            for a, b in self.cache.covered(symbol, interval).ranges:
                cov.add(a, b)
            return cov
        step = interval_ns(interval)
        out = Coverage()
        for a, b in self.catalog.covered(symbol, source).ranges:
            first = -(-(a + step - interval_ns(source)) // step) * step
            last = b // step * step
            if first <= last:
                out.add(first, last)
        return out

    def _source_interval(self, symbol: str, interval: str) -> str:
        """The interval to read: ``interval`` itself, or the coarsest finer interval the
        catalog holds for ``symbol`` that divides it (served by resampling)."""
        stored = self.catalog.intervals(symbol)
        if interval in stored or interval not in INTERVALS:
            return interval
        if self.questdb is not None and self._questdb_span(symbol, interval) is not None:
            return interval
        step = interval_ns(interval)
        finer = [i for i in stored if i in INTERVALS and interval_ns(i) < step
                 and step % interval_ns(i) == 0]
        return max(finer, key=interval_ns) if finer else interval

    def _questdb_span(self, symbol: str, interval: str) -> tuple[int, int, int] | None:
        if self.questdb is None:
            return None
        try:
            return self.questdb.span(symbol, interval)
        except Exception as exc:
            raise BackfillError(f"QuestDB ({getattr(self.questdb, 'name', 'questdb')}): "
                                f"cannot ask for {symbol!r} at {interval}: {exc}") from None

    def _plan(self, symbol: str, interval: str, start: int | None, end: int | None) -> _Plan:
        source = self._source_interval(symbol, interval)
        lo, hi = self._resolve(symbol, interval, source, start, end)
        plan = _Plan(symbol, interval, lo, hi, source, lo, hi)
        if source != interval:
            step, src = interval_ns(interval), interval_ns(source)
            first_bucket = -(-lo // step) * step
            plan.src_start = first_bucket - step + src
            plan.src_end = hi // step * step
            if plan.src_end < plan.src_start:
                plan.src_end = plan.src_start - 1  # no whole bucket in the range
        return plan

    def _resolve(self, symbol: str, interval: str, source: str,
                 start: int | None, end: int | None) -> tuple[int, int]:
        """Fill an open ``start``/``end`` from what the layers have."""
        if start is not None and end is not None:
            return start, end
        have = self.catalog.covered(symbol, source)
        firsts, lasts = [], []
        if have.ranges:
            firsts.append(have.ranges[0][0])
            lasts.append(have.ranges[-1][1])
        held = self._questdb_span(symbol, source) if source == interval else None
        if held is not None:
            firsts.append(held[0])
            lasts.append(held[1])
        origin_span = getattr(self.origin, "span", None)
        origin_said = None
        if self.origin is not None and (start is None or end is None) and origin_span:
            try:
                got = origin_span(symbol, source)
            except SymbolNotFound as exc:
                got, origin_said = None, str(exc)
            if got is not None:
                firsts.append(got[0])
                lasts.append(got[1])
        elif self.origin is not None and end is None:
            lasts.append(self.clock())
        if start is None and not firsts:
            if self.origin is not None and not origin_span:
                raise ValueError(
                    f"no {source} bars for {symbol!r} are stored yet and origin "
                    f"{self.origin.name} cannot say where its history starts: give a start"
                )
            raise self._not_found(symbol, interval, start, end, origin_said)
        lo = min(firsts) if start is None else start
        hi = (max(lasts) if lasts else lo) if end is None else end
        return lo, hi

    def _not_found(self, symbol: str, interval: str, start: int | None, end: int | None,
                   origin_said: str | None = None) -> DataNotFound:
        source = self._source_interval(symbol, interval)
        looked = ["cache (nothing held)"]
        stored = self.catalog.symbols(interval)
        hint = "" if self.catalog.symbols() else ": try `qmtl data demo` or `qmtl data import`"
        looked.append(
            f"catalog {self.catalog.root} (no symbol={symbol}/interval={interval}; "
            f"symbols at {interval}: {', '.join(stored) or 'none'}{hint}"
            + (f"; {symbol} has {', '.join(self.catalog.intervals(symbol))}"
               if self.catalog.intervals(symbol) else "") + ")"
        )
        if source != interval:
            looked.append(f"resampling from {source} (nothing stored in the range)")
        if self.questdb is not None:
            from connectors.data.questdb import table_name

            table = table_name(getattr(self.questdb, "table", "bars_{interval}"), interval)
            looked.append(f"{getattr(self.questdb, 'name', 'questdb')} table {table} "
                          f"(no rows for {symbol!r})")
        else:
            looked.append("QuestDB (not configured: QMTL_QUESTDB)")
        if self.origin is not None:
            looked.append(origin_said or f"origin {self.origin.name} (no bars)")
        else:
            looked.append("backfill origin (not configured: QMTL_ORIGIN or --origin)")
        return DataNotFound(symbol, interval, start, end, looked,
                            headline=f"unknown symbol {symbol!r} at interval {interval}"
                            if not self.catalog.intervals(symbol) else None)

    # -- filling the catalog ---------------------------------------------------------------
    def ensure(self, symbol: str, interval: str, start: int, end: int) -> list[Fetch]:
        """Make the catalog cover ``[start, end]`` of ``symbol`` at ``interval`` (the stored
        interval, no resampling): fill each missing range from QuestDB, then the origin.
        Returns the fetches made (none when it was covered). Without QuestDB and origin, what
        is missing stays missing (and is noted in :attr:`notes`)."""
        if end < start:
            return []
        with self.catalog.lock(symbol, interval):
            gaps = self.catalog.covered(symbol, interval).missing(start, end)
            if not gaps:
                return []
            made: list[Fetch] = []
            if self.questdb is not None:
                made += self._from_questdb(symbol, interval, gaps)
                gaps = self.catalog.covered(symbol, interval).missing(start, end)
            if gaps and self.origin is not None:
                for a, b in gaps:
                    made.append(self._backfill(symbol, interval, a, b))
            elif gaps:
                stored = self.catalog.covered(symbol, interval)
                if stored.ranges:
                    shown = ", ".join(span(a, b) for a, b in gaps[:3])
                    more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
                    self._note(f"{symbol} {interval}: the catalog does not cover {shown}{more} "
                               "and no backfill origin is configured (QMTL_ORIGIN or --origin)")
            return made

    def _note(self, text: str) -> None:
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def _from_questdb(self, symbol: str, interval: str,
                      gaps: list[tuple[int, int]]) -> list[Fetch]:
        held = self._questdb_span(symbol, interval)
        if held is None:
            return []
        made = []
        name = getattr(self.questdb, "name", "questdb")
        for a, b in gaps:
            lo, hi = max(a, held[0]), min(b, held[1])
            if lo > hi:
                continue
            label = f"{name}: {symbol} {interval} {span(lo, hi)}"
            pages = []
            self.progress.begin(label, _expected(interval, lo, hi))
            try:
                for page in self.questdb.iter_pages(symbol, interval, lo, hi):
                    pages.append(page)
                    self.progress.advance(len(page["ts"]))
            except Exception as exc:
                raise BackfillError(
                    f"{name} failed reading {symbol} {interval} {span(lo, hi)}: "
                    f"{exc}; nothing of that range was written"
                ) from exc
            finally:
                self.progress.end()
            bars = concat_batches(pages) if pages else empty_batch()
            self._store(symbol, interval, bars, lo, hi, name)
            self._count("questdb_reads")
            made.append(self._log(Fetch(name, symbol, interval, lo, hi, len(bars["ts"]))))
        return made

    def _backfill(self, symbol: str, interval: str, a: int, b: int) -> Fetch:
        assert self.origin is not None
        name = self.origin.name
        label = f"backfill {symbol} {interval}"
        chunks: list[Batch] = []
        self._count("backfills")
        try:
            stream = self.origin.fetch(symbol, interval, a, b)
        except SymbolNotFound as exc:
            raise self._not_found(symbol, interval, a, b, origin_said=str(exc)) from None
        self.progress.begin(label, _expected(interval, a, b))
        try:
            for chunk in stream:
                chunks.append({c: np.asarray(chunk[c]) for c in BAR_COLUMNS})
                self.progress.advance(len(chunk["ts"]))
        except SymbolNotFound as exc:
            raise self._not_found(symbol, interval, a, b, origin_said=str(exc)) from None
        except Exception as exc:
            raise BackfillError(
                f"backfill of {symbol} {interval} {span(a, b)} from {name} failed: "
                f"{type(exc).__name__}: {exc}; nothing of that range was written "
                "(the catalog and its coverage are unchanged)"
            ) from exc
        finally:
            self.progress.end()
        bars = concat_batches(chunks) if chunks else empty_batch()
        ts = bars["ts"]
        keep = (ts >= a) & (ts <= b)
        if not keep.all():
            bars = {c: v[keep] for c, v in bars.items()}
        self._store(symbol, interval, bars, a, b, name)
        self._count("backfill_rows", len(bars["ts"]))
        if self.writer is not None and len(bars["ts"]):
            try:
                self.writer.write(symbol, interval, bars)
            except Exception as exc:
                self._note(f"backfilled bars were not written to QuestDB: {exc}")
        return self._log(Fetch(name, symbol, interval, a, b, len(bars["ts"])))

    def _store(self, symbol: str, interval: str, bars: Batch, a: int, b: int, name: str) -> None:
        from qmtl.core.bars import BadBarsError

        try:
            self.catalog.write(symbol, interval, bars, covered=[(a, b)])
        except BadBarsError as exc:
            raise BackfillError(
                f"{name} sent bad bars for {symbol} {interval} {span(a, b)}: {exc}; "
                "nothing of that range was written"
            ) from None
        self.cache.invalidate(symbol, interval)

    def _log(self, fetch: Fetch) -> Fetch:
        with self._lock:
            self.fetches.append(fetch)
        return fetch

    # -- serving ---------------------------------------------------------------------------
    def prepare(self, symbol: str, interval: str, start: int | None = None,
                end: int | None = None) -> _Plan:
        """Resolve the range and fill the catalog for it; return the plan to read it."""
        plan = self._plan(symbol, interval, start, end)
        self.ensure(symbol, plan.source, plan.src_start, plan.src_end)
        if not self.catalog.intervals(symbol) or plan.source not in self.catalog.intervals(symbol):
            raise self._not_found(symbol, interval, start, end)
        return plan

    def read(self, symbol: str, interval: str, start: int | None = None,
             end: int | None = None) -> Batch:
        """Every bar of ``symbol`` at ``interval`` with ``start <= ts <= end`` (an open end:
        what the layers have), from the cheapest layer; raises :class:`DataNotFound`."""
        if start is not None and end is not None:
            hit = self.cache.get(symbol, interval, start, end)
            if hit is not None:
                self._count("cache_hits")
                return hit
        plan = self.prepare(symbol, interval, start, end)
        if plan.source == interval:
            hit = self.cache.get(symbol, interval, plan.start, plan.end)
            if hit is not None:
                self._count("cache_hits")
                return hit
        return self._load(plan)

    def _load(self, plan: _Plan) -> Batch:
        """Read the plan's bars from the catalog (resampling if needed) and cache them."""
        from dataflows.resample import resample

        symbol, interval = plan.symbol, plan.interval
        stored = self.catalog.covered(symbol, plan.source)
        bars = self.catalog.read(symbol, plan.source, plan.src_start, plan.src_end)
        self._count("catalog_reads")
        if plan.source != interval:
            now = max((min(b, plan.src_end) for a, b in stored.ranges if a <= plan.src_end),
                      default=None)
            bars = resample(bars, plan.source, interval, now=now)
            covered = self.coverage(symbol, interval)
            keep = _inside(bars["ts"], covered, plan.start, plan.end)
            bars = {c: v[keep] for c, v in bars.items()}
            self._count("resampled", len(bars["ts"]))
        else:
            covered = stored
        self._keep(plan, covered, bars)
        return bars

    def plan_rows(self, symbols: Sequence[str], interval: str, start: int | None = None,
                  end: int | None = None) -> dict[str, int]:
        """Fill what is missing for every symbol (progress shown per fetch) and return the
        bars each will serve; raises :class:`DataNotFound` naming the first unknown symbol."""
        out = {}
        for s in symbols:
            plan = self.prepare(s, interval, start, end)
            cold = self._cold(len(symbols), plan)
            if cold is not None:  # counted from the file's metadata: read during the replay
                out[s] = cold.count(plan.start, plan.end)
            elif self._fits(len(symbols), s, plan):
                out[s] = len(self.read(s, interval, plan.start, plan.end)["ts"])
            elif plan.source == interval:
                ts = self.catalog.read_column(s, interval, "ts", plan.start, plan.end)
                out[s] = len(ts)
            else:  # count the closed, covered buckets from the source times alone
                from dataflows.resample import bucket_ends

                src = self.catalog.read_column(s, plan.source, "ts", plan.src_start,
                                               plan.src_end)
                ends = np.unique(bucket_ends(src, interval_ns(interval)))
                # a covered bucket is closed: the data is known to extend to its end
                keep = _inside(ends, self.coverage(s, interval), plan.start, plan.end)
                out[s] = int(keep.sum())
        return out

    def _fits(self, n_symbols: int, symbol: str, plan: _Plan) -> bool:
        cov = self.catalog.coverage(symbol, plan.source)
        rows = cov[2] if cov else 0
        return rows * BAR_BYTES * max(n_symbols, 1) <= self.cache.max_bytes

    def _cold(self, n_symbols: int, plan: _Plan) -> _ColdFile | None:
        """The catalog file to stream into the cache when ``plan`` fits the cache but is not
        in it yet, and is served as stored (no resampling) from a file of the catalog's own
        schema without nulls; else None (served by :meth:`read`)."""
        if plan.source != plan.interval or not self._fits(n_symbols, plan.symbol, plan):
            return None
        if self.cache.covered(plan.symbol, plan.interval).contains(plan.start, plan.end):
            return None
        return _ColdFile.open(self.catalog, plan.symbol, plan.interval)

    def iter_batches(
        self,
        symbols: Sequence[str],
        interval: str,
        start: int | None = None,
        end: int | None = None,
        batch_size: int | Sequence[int] = 10_000,
    ) -> Iterator[tuple[str, Batch]]:
        """Time-aligned ``(symbol, batch)`` items over ``symbols`` (like
        :meth:`Catalog.iter_batches`): from memory when the range fits the cache, else
        streamed from the catalog chunk by chunk (resampled on the way when needed)."""
        streams: dict[str, Iterator[Batch]] = {}
        cold: list[tuple[_Plan, _ColdFile]] = []
        for s in symbols:
            plan = self.prepare(s, interval, start, end)
            file = self._cold(len(symbols), plan)
            if file is not None:  # read ahead while the bars before are replayed
                cold.append((plan, file))
            elif self._fits(len(symbols), s, plan):
                streams[s] = iter([self.read(s, interval, plan.start, plan.end)])
            else:
                streams[s] = self._stream(plan)
        if cold:
            reads = Demux(Prefetcher(self._fill(cold), depth=PREFETCH_DEPTH * len(cold),
                                     name="qmtl-catalog-read"))
            for plan, _ in cold:
                streams[plan.symbol] = reads.stream(plan.symbol)
        return align({s: streams[s] for s in symbols}, batch_size)

    def _fill(self, cold: list[tuple[_Plan, _ColdFile]]) -> Iterator[tuple[str, Batch]]:
        """The plans' bars read from their files a block of row groups at a time into arrays
        of each whole range, as ``(symbol, block)`` items of (read-only) views, the symbol
        read least far in time first (the order a time-aligned replay asks for them). Once a
        symbol is all read, its arrays are its cache entry (as :meth:`_load` caches them)."""
        jobs = []
        for plan, file in cold:
            stored = self.catalog.covered(plan.symbol, plan.interval)
            self._count("catalog_reads")
            jobs.append(_Job(plan, stored, file.blocks(plan.start, plan.end)))
        while jobs:
            job = min(jobs, key=lambda j: j.reached)
            got = next(job.blocks, None)
            if got is None:
                jobs.remove(job)
                if job.arrays is not None:
                    self._keep(job.plan, job.stored,
                               {c: v[job.begin:job.end] for c, v in job.arrays.items()})
                continue
            a, b, job.arrays = got
            if job.begin < 0:
                job.begin = a
            job.end = b
            if b > a:
                job.reached = int(job.arrays["ts"][b - 1])
                yield job.plan.symbol, {c: v[a:b] for c, v in job.arrays.items()}

    def _keep(self, plan: _Plan, covered: Coverage, bars: Batch) -> None:
        """Cache ``bars`` (every bar of ``plan``'s range) where ``covered`` says they are
        complete."""
        for a, b in covered.ranges:  # cache only what is known complete
            lo, hi = max(a, plan.start), min(b, plan.end)
            if lo <= hi:
                ts = bars["ts"]
                i, j = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "right")
                self.cache.put(plan.symbol, plan.interval, lo, hi,
                               {c: v[i:j] for c, v in bars.items()})

    def _stream(self, plan: _Plan) -> Iterator[Batch]:
        from dataflows.resample import Resampler

        chunks = self.catalog.iter_batches(
            [plan.symbol], plan.source, plan.src_start, plan.src_end, 65_536
        )
        if plan.source == plan.interval:
            for _, batch in chunks:
                yield batch
            return
        resampler = Resampler(plan.source, plan.interval)
        stored = self.catalog.covered(plan.symbol, plan.source)
        now = max((min(b, plan.src_end) for a, b in stored.ranges if a <= plan.src_end),
                  default=None)

        covered = self.coverage(plan.symbol, plan.interval)

        def clip(b: Batch) -> Batch:
            keep = _inside(b["ts"], covered, plan.start, plan.end)
            return {c: v[keep] for c, v in b.items()}

        for _, batch in chunks:
            out = resampler.update(batch)
            if len(out["ts"]):
                yield clip(out)
        if now is not None:
            tail = resampler.advance(now)
            if len(tail["ts"]):
                yield clip(tail)


PREFETCH_DEPTH = 4
"""Blocks a cold read is ahead of the replay at most (each a view of the cache entry)."""
BLOCK_GROUPS = (4, 16)
"""Row groups a cold read reads and decodes at a time: the first block of a file is small (the
replay starts soon), each next one twice the one before, up to the second number (few calls
into Parquet and few hand-overs of the GIL). Measured on 10 x 1M bars in one process, cold
over memory, four runs each: (2, 32) 1.33-1.46x, (4, 16) 1.25-1.33x; blocks of 32 row groups
(15 MB a symbol) hold the GIL in long stretches the engine waits on."""


@dataclass
class _Job:
    """One symbol of a cold read: its blocks, how far in time they reached, its rows read."""

    plan: _Plan
    stored: Coverage
    blocks: Iterator[tuple[int, int, Batch]]
    reached: int = -(2**63)
    arrays: Batch | None = None
    begin: int = -1
    end: int = -1


class _ColdFile:
    """A catalog file read straight into the arrays of a cache entry (see ``_fill``)."""

    def __init__(self, path: Path, file: Any) -> None:
        self.path, self.file = path, file

    @classmethod
    def open(cls, catalog: Catalog, symbol: str, interval: str) -> _ColdFile | None:
        """The file, if it has the catalog's schema, ``ts`` statistics in every row group and
        no nulls (else None: :meth:`Catalog.read` serves it, with its casts and checks)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from connectors.data.catalog import SCHEMA

        path = catalog.path(symbol, interval)
        if not path.is_file():
            return None
        try:
            file = pq.ParquetFile(path, pre_buffer=False)
            meta = file.metadata
            if not file.schema_arrow.equals(SCHEMA) or meta.num_columns != len(SCHEMA):
                return None
            for i in range(meta.num_row_groups):
                group = meta.row_group(i)
                for j in range(group.num_columns):
                    stats = group.column(j).statistics
                    if stats is None or not stats.has_null_count or stats.null_count:
                        return None
                    if j == 0 and not stats.has_min_max:
                        return None
        except (pa.ArrowInvalid, OSError):
            return None  # Catalog.read names the corrupt file
        return cls(path, file)

    def count(self, start: int, end: int) -> int:
        """Bars with ``start <= ts <= end``: from the row groups' statistics, reading ``ts``
        only of the (at most two) row groups the range cuts."""
        from connectors.data.catalog import _row_groups

        meta, n = self.file.metadata, 0
        for i in _row_groups(meta, start, end):
            group = meta.row_group(i)
            stats = group.column(0).statistics
            if stats.min >= start and stats.max <= end:
                n += group.num_rows
                continue
            ts = self._read([i], ["ts"]).column(0).to_numpy()
            n += int(np.searchsorted(ts, end, "right") - np.searchsorted(ts, start, "left"))
        return n

    def _read(self, groups: list[int], columns: list[str]) -> Any:
        import pyarrow as pa

        try:
            return self.file.read_row_groups(groups, columns=columns, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"corrupt catalog file {self.path}: {exc}") from None

    def blocks(self, start: int, end: int) -> Iterator[tuple[int, int, Batch]]:
        """Read the row groups that may hold ``[start, end]`` into one array per column,
        a block at a time (see ``BLOCK_GROUPS``); after each block yield ``(a, b, arrays)``: rows
        ``a:b`` of the arrays are the block's bars inside the range (written, read-only)."""
        from connectors.data.catalog import SCHEMA, _row_groups

        meta = self.file.metadata
        groups = _row_groups(meta, start, end)
        rows = sum(meta.row_group(i).num_rows for i in groups)
        arrays = {c: np.empty(rows, dtype=SCHEMA.field(c).type.to_pandas_dtype())
                  for c in BAR_COLUMNS}
        views = {}
        for c, v in arrays.items():
            views[c] = v.view()
            views[c].flags.writeable = False
        pos, k, step = 0, 0, BLOCK_GROUPS[0]
        while k < len(groups):
            table = self._read(groups[k:k + step], list(BAR_COLUMNS))
            k, step = k + step, min(2 * step, BLOCK_GROUPS[1])
            m = table.num_rows
            for c in BAR_COLUMNS:
                at = pos
                for chunk in table.column(c).chunks:
                    arrays[c][at:at + len(chunk)] = chunk.to_numpy()
                    at += len(chunk)
            del table
            ts = arrays["ts"][pos:pos + m]
            a = pos + int(np.searchsorted(ts, start, "left"))
            b = pos + int(np.searchsorted(ts, end, "right"))
            pos += m
            yield a, b, views
            if b < pos:  # the range ends inside this block
                return


def _inside(ts: np.ndarray, covered: Coverage, start: int, end: int) -> np.ndarray:
    """Mask of ``ts`` within ``[start, end]`` and within a covered range (so a bucket whose
    first part lies before what is known is not served as if it were whole)."""
    keep = np.zeros(len(ts), dtype=bool)
    for a, b in covered.ranges:
        keep |= (ts >= max(a, start)) & (ts <= min(b, end))
    return keep


def _expected(interval: str, a: int, b: int) -> int | None:
    """Bars a range holds at most (24/7), for progress totals."""
    try:
        return max(0, (b - a) // interval_ns(interval) + 1)
    except ValueError:
        return None


def describe_errors() -> tuple[type[BaseException], ...]:
    """The exception types a provider raises for bad data requests (for CLIs to report).

    >>> DataNotFound in describe_errors()
    True
    """
    return (DataNotFound, BackfillError, CatalogError, OriginError, SymbolNotFound)
