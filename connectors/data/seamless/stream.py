"""Serving a request: read the planned bars (from the cache, else the catalog, resampled when
planned so) and stream time-aligned batches over many symbols: from memory when the range
fits the cache, read ahead cold from the catalog parts into the cache when it fits but is not
held yet, else streamed from the catalog chunk by chunk.

>>> import tempfile
>>> from connectors.data.synthetic import generate_bars
>>> from connectors.data.seamless.layers import Layers
>>> from connectors.data.seamless.plan import Planner
>>> from connectors.data.seamless.backfill import Backfiller
>>> layers = Layers(tempfile.mkdtemp())
>>> _ = layers.catalog.write("A", "1m", generate_bars(120, interval="1m"))
>>> planner = Planner(layers)
>>> reader = Reader(layers, planner, Backfiller(layers, planner))
>>> [len(b["ts"]) for _, b in reader.iter_batches(["A"], "1m", batch_size=50)]
[50, 50, 20]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from connectors.data.coverage import Coverage
from connectors.data.memory import align
from connectors.data.prefetch import Demux, Prefetcher
from connectors.data.seamless.backfill import Backfiller
from connectors.data.seamless.cold import ColdRead
from connectors.data.seamless.layers import Layers
from connectors.data.seamless.plan import Plan, Planner, inside
from dataflows.resample import Resampler, bucket_ends, resample
from qmtl.core.bars import Batch
from qmtl.core.intervals import interval_ns

BAR_BYTES = 48
"""Bytes per bar in memory (int64 ts + five float64)."""
PREFETCH_DEPTH = 4
"""Blocks a cold read is ahead of the replay at most (each a view of the cache entry)."""
STREAM_CHUNK = 65_536
"""Rows per chunk read from the catalog when a range does not fit the cache."""


@dataclass
class _Job:
    """One symbol of a cold read: its blocks, how far in time they reached, its rows read."""

    plan: Plan
    stored: Coverage
    cold: ColdRead
    blocks: Iterator[tuple[int, int, Batch]]
    reached: int = -(2**63)
    arrays: Batch | None = None
    begin: int = -1
    end: int = -1


class Reader:
    """Serves requests over ``layers`` (see the module docstring)."""

    def __init__(self, layers: Layers, planner: Planner, backfiller: Backfiller) -> None:
        self.layers = layers
        self.planner = planner
        self.backfiller = backfiller

    def prepare(self, symbol: str, interval: str, start: int | None = None,
                end: int | None = None) -> Plan:
        """Resolve the range and fill the catalog for it; return the plan to read it."""
        plan = self.planner.plan(symbol, interval, start, end)
        self.backfiller.ensure(symbol, plan.source, plan.src_start, plan.src_end)
        stored = self.layers.catalog.intervals(symbol)
        if not stored or plan.source not in stored:
            raise self.planner.not_found(symbol, interval, start, end)
        return plan

    def read(self, symbol: str, interval: str, start: int | None = None,
             end: int | None = None) -> Batch:
        """Every bar of ``symbol`` at ``interval`` with ``start <= ts <= end`` (an open end:
        what the layers have), from the cheapest layer."""
        cache = self.layers.cache
        if start is not None and end is not None:
            hit = cache.get(symbol, interval, start, end)
            if hit is not None:
                self.layers.count("cache_hits")
                return hit
        plan = self.prepare(symbol, interval, start, end)
        if plan.source == interval:
            hit = cache.get(symbol, interval, plan.start, plan.end)
            if hit is not None:
                self.layers.count("cache_hits")
                return hit
        return self._load(plan)

    def _load(self, plan: Plan) -> Batch:
        """Read the plan's bars from the catalog (resampling if needed) and cache them."""
        catalog = self.layers.catalog
        symbol, interval = plan.symbol, plan.interval
        stored = catalog.covered(symbol, plan.source)
        bars = catalog.read(symbol, plan.source, plan.src_start, plan.src_end)
        self.layers.count("catalog_reads")
        if plan.source != interval:
            now = max((min(b, plan.src_end) for a, b in stored.ranges if a <= plan.src_end),
                      default=None)
            bars = resample(bars, plan.source, interval, now=now)
            covered = self.planner.coverage(symbol, interval)
            keep = inside(bars["ts"], covered, plan.start, plan.end)
            bars = {c: v[keep] for c, v in bars.items()}
            self.layers.count("resampled", len(bars["ts"]))
        else:
            covered = stored
        self._keep(plan, covered, bars)
        return bars

    def plan_rows(self, symbols: Sequence[str], interval: str, start: int | None = None,
                  end: int | None = None) -> dict[str, int]:
        """Fill what is missing for every symbol and return the bars each will serve."""
        catalog = self.layers.catalog
        out = {}
        for s in symbols:
            plan = self.prepare(s, interval, start, end)
            cold = self._cold(len(symbols), plan)
            if cold is not None:  # counted from the parts' metadata: read during the replay
                try:
                    out[s] = cold.count(plan.start, plan.end)
                finally:
                    cold.close()
            elif self._fits(len(symbols), s, plan):
                out[s] = len(self.read(s, interval, plan.start, plan.end)["ts"])
            elif plan.source == interval:
                out[s] = len(catalog.read_column(s, interval, "ts", plan.start, plan.end))
            else:  # count the closed, covered buckets from the source times alone
                src = catalog.read_column(s, plan.source, "ts", plan.src_start, plan.src_end)
                ends = np.unique(bucket_ends(src, interval_ns(interval)))
                # a covered bucket is closed: the data is known to extend to its end
                keep = inside(ends, self.planner.coverage(s, interval), plan.start, plan.end)
                out[s] = int(keep.sum())
        return out

    def _fits(self, n_symbols: int, symbol: str, plan: Plan) -> bool:
        cov = self.layers.catalog.coverage(symbol, plan.source)
        rows = cov[2] if cov else 0
        return rows * BAR_BYTES * max(n_symbols, 1) <= self.layers.cache.max_bytes

    def _cold(self, n_symbols: int, plan: Plan) -> ColdRead | None:
        """The catalog parts to stream into the cache when ``plan`` fits the cache but is not
        in it yet, and is served as stored (no resampling) from parts of the catalog's own
        schema without nulls; else None (served by :meth:`read`)."""
        if plan.source != plan.interval or not self._fits(n_symbols, plan.symbol, plan):
            return None
        if self.layers.cache.covered(plan.symbol, plan.interval).contains(plan.start, plan.end):
            return None
        return ColdRead.open(self.layers.catalog, plan.symbol, plan.interval, plan.start,
                             plan.end)

    def iter_batches(
        self,
        symbols: Sequence[str],
        interval: str,
        start: int | None = None,
        end: int | None = None,
        batch_size: int | Sequence[int] = 10_000,
    ) -> Iterator[tuple[str, Batch]]:
        """Time-aligned ``(symbol, batch)`` items over ``symbols`` (see the module docstring)."""
        streams: dict[str, Iterator[Batch]] = {}
        cold: list[tuple[Plan, ColdRead]] = []
        for s in symbols:
            plan = self.prepare(s, interval, start, end)
            parts = self._cold(len(symbols), plan)
            if parts is not None:  # read ahead while the bars before are replayed
                cold.append((plan, parts))
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

    def _fill(self, cold: list[tuple[Plan, ColdRead]]) -> Iterator[tuple[str, Batch]]:
        """The plans' bars read from their parts a block of row groups at a time into arrays
        of each whole range, as ``(symbol, block)`` items of (read-only) views, the symbol
        read least far in time first (the order a time-aligned replay asks for them). Once a
        symbol is all read, its arrays are its cache entry (as :meth:`_load` caches them)."""
        jobs = []
        for plan, parts in cold:
            stored = self.layers.catalog.covered(plan.symbol, plan.interval)
            self.layers.count("catalog_reads")
            jobs.append(_Job(plan, stored, parts, parts.blocks(plan.start, plan.end)))
        try:
            while jobs:
                job = min(jobs, key=lambda j: j.reached)
                got = next(job.blocks, None)
                if got is None:
                    jobs.remove(job)
                    job.cold.close()
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
        finally:
            for job in jobs:
                job.cold.close()

    def _keep(self, plan: Plan, covered: Coverage, bars: Batch) -> None:
        """Cache ``bars`` (every bar of ``plan``'s range) where ``covered`` says they are
        complete."""
        for a, b in covered.ranges:  # cache only what is known complete
            lo, hi = max(a, plan.start), min(b, plan.end)
            if lo <= hi:
                ts = bars["ts"]
                i, j = np.searchsorted(ts, lo, "left"), np.searchsorted(ts, hi, "right")
                self.layers.cache.put(plan.symbol, plan.interval, lo, hi,
                                      {c: v[i:j] for c, v in bars.items()})

    def _stream(self, plan: Plan) -> Iterator[Batch]:
        catalog = self.layers.catalog
        chunks = catalog.iter_batches([plan.symbol], plan.source, plan.src_start, plan.src_end,
                                      STREAM_CHUNK)
        if plan.source == plan.interval:
            for _, batch in chunks:
                yield batch
            return
        resampler = Resampler(plan.source, plan.interval)
        stored = catalog.covered(plan.symbol, plan.source)
        now = max((min(b, plan.src_end) for a, b in stored.ranges if a <= plan.src_end),
                  default=None)

        covered = self.planner.coverage(plan.symbol, plan.interval)

        def clip(b: Batch) -> Batch:
            keep = inside(b["ts"], covered, plan.start, plan.end)
            return {c: v[keep] for c, v in b.items()}

        for _, batch in chunks:
            out = resampler.update(batch)
            if len(out["ts"]):
                yield clip(out)
        if now is not None:
            tail = resampler.advance(now)
            if len(tail["ts"]):
                yield clip(tail)
