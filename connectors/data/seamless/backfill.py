"""Filling the catalog: each range it does not cover is fetched from QuestDB, then from the
backfill origin, and written to the catalog with the range it covers, under the catalog's lock
of the (symbol, interval) (threads and processes), re-checking coverage under it so that
concurrent requests for the same missing range trigger one fetch. A range already covered is
served without the lock: reading needs no write access to the catalog. Each range is one
transaction: fetched whole, then written in one atomic commit (bars and coverage together);
an origin failing half-way writes nothing.

>>> import tempfile
>>> from connectors.data.seamless.layers import Layers
>>> from connectors.data.seamless.plan import Planner
>>> layers = Layers(tempfile.mkdtemp())
>>> Backfiller(layers, Planner(layers)).ensure("A", "1d", 0, 10)  # nothing to fetch from
[]
"""

from __future__ import annotations

import numpy as np

from connectors.data.origins import SymbolNotFound
from connectors.data.seamless.errors import BackfillError, span
from connectors.data.seamless.layers import Fetch, Layers
from connectors.data.seamless.plan import Planner
from qmtl.core.bars import BadBarsError, Batch, concat_batches, empty_batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_ns


def expected(interval: str, a: int, b: int) -> int | None:
    """Bars a range holds at most (24/7), for progress totals.

    >>> expected("1m", 0, 59 * 60 * 10**9), expected("weird", 0, 1)
    (60, None)
    """
    try:
        return max(0, (b - a) // interval_ns(interval) + 1)
    except ValueError:
        return None


class Backfiller:
    """Fills the catalog of ``layers`` (see the module docstring)."""

    def __init__(self, layers: Layers, planner: Planner) -> None:
        self.layers = layers
        self.planner = planner

    def ensure(self, symbol: str, interval: str, start: int, end: int) -> list[Fetch]:
        """Make the catalog cover ``[start, end]`` of ``symbol`` at ``interval`` (the stored
        interval, no resampling): fill each missing range from QuestDB, then the origin.
        Returns the fetches made (none when it was covered). Without QuestDB and origin, what
        is missing stays missing (and is noted in ``notes``)."""
        if end < start:
            return []
        layers, catalog = self.layers, self.layers.catalog
        if not catalog.covered(symbol, interval).missing(start, end):
            return []  # covered: a read takes no lock (a read-only catalog serves it)
        with catalog.lock(symbol, interval):
            gaps = catalog.covered(symbol, interval).missing(start, end)
            if not gaps:
                return []
            catalog.verify(symbol, interval)
            made: list[Fetch] = []
            if layers.questdb is not None:
                made += self._from_questdb(symbol, interval, gaps)
                gaps = catalog.covered(symbol, interval).missing(start, end)
            if gaps and layers.origin is not None:
                for a, b in gaps:
                    made.append(self._from_origin(symbol, interval, a, b))
            elif gaps:
                stored = catalog.covered(symbol, interval)
                if stored.ranges:
                    shown = ", ".join(span(a, b) for a, b in gaps[:3])
                    more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
                    layers.note(
                        f"{symbol} {interval}: the catalog does not cover {shown}{more} "
                        "and no backfill origin is configured (QMTL_ORIGIN or --origin)"
                    )
            return made

    def _from_questdb(self, symbol: str, interval: str, gaps: list[tuple[int, int]]) -> list[Fetch]:
        held = self.planner.questdb_span(symbol, interval)
        if held is None:
            return []
        layers = self.layers
        made = []
        name = getattr(layers.questdb, "name", "questdb")
        for a, b in gaps:
            lo, hi = max(a, held[0]), min(b, held[1])
            if lo > hi:
                continue
            label = f"{name}: {symbol} {interval} {span(lo, hi)}"
            pages = []
            layers.progress.begin(label, expected(interval, lo, hi))
            try:
                for page in layers.questdb.iter_pages(symbol, interval, lo, hi):
                    pages.append(page)
                    layers.progress.advance(len(page["ts"]))
            except Exception as exc:
                raise BackfillError(
                    f"{name} failed reading {symbol} {interval} {span(lo, hi)}: "
                    f"{exc}; nothing of that range was written"
                ) from exc
            finally:
                layers.progress.end()
            bars = concat_batches(pages) if pages else empty_batch()
            self._store(symbol, interval, bars, lo, hi, name)
            layers.count("questdb_reads")
            made.append(layers.log(Fetch(name, symbol, interval, lo, hi, len(bars["ts"]))))
        return made

    def _from_origin(self, symbol: str, interval: str, a: int, b: int) -> Fetch:
        layers = self.layers
        assert layers.origin is not None
        name = layers.origin.name
        label = f"backfill {symbol} {interval}"
        chunks: list[Batch] = []
        layers.count("backfills")
        try:
            stream = layers.origin.fetch(symbol, interval, a, b)
        except SymbolNotFound as exc:
            raise self.planner.not_found(symbol, interval, a, b, origin_said=str(exc)) from None
        layers.progress.begin(label, expected(interval, a, b))
        try:
            for chunk in stream:
                chunks.append({c: np.asarray(chunk[c]) for c in BAR_COLUMNS})
                layers.progress.advance(len(chunk["ts"]))
        except SymbolNotFound as exc:
            raise self.planner.not_found(symbol, interval, a, b, origin_said=str(exc)) from None
        except Exception as exc:
            raise BackfillError(
                f"backfill of {symbol} {interval} {span(a, b)} from {name} failed: "
                f"{type(exc).__name__}: {exc}; nothing of that range was written "
                "(the catalog and its coverage are unchanged)"
            ) from exc
        finally:
            layers.progress.end()
        bars = concat_batches(chunks) if chunks else empty_batch()
        ts = bars["ts"]
        keep = (ts >= a) & (ts <= b)
        if not keep.all():
            bars = {c: v[keep] for c, v in bars.items()}
        self._store(symbol, interval, bars, a, b, name)
        layers.count("backfill_rows", len(bars["ts"]))
        if layers.writer is not None and len(bars["ts"]):
            try:
                layers.writer.write(symbol, interval, bars)
            except Exception as exc:
                layers.note(f"backfilled bars were not written to QuestDB: {exc}")
        return layers.log(Fetch(name, symbol, interval, a, b, len(bars["ts"])))

    def _store(self, symbol: str, interval: str, bars: Batch, a: int, b: int, name: str) -> None:
        try:
            self.layers.catalog.write(symbol, interval, bars, covered=[(a, b)])
        except BadBarsError as exc:
            raise BackfillError(
                f"{name} sent bad bars for {symbol} {interval} {span(a, b)}: {exc}; "
                "nothing of that range was written"
            ) from None
        self.layers.cache.invalidate(symbol, interval)
