"""Planning a request: which stored interval serves it (itself, or a finer one resampled),
which range it covers once open ends are filled from what the layers hold, and what is known
complete; and, when nothing has it, the error that says where it looked.

>>> import tempfile
>>> from connectors.data.synthetic import generate_bars
>>> from connectors.data.seamless.layers import Layers
>>> layers = Layers(tempfile.mkdtemp())
>>> _ = layers.catalog.write("A", "1m", generate_bars(120, interval="1m", start="2024-01-01"))
>>> plan = Planner(layers).plan("A", "1h", None, None)
>>> plan.interval, plan.source  # served by resampling the stored 1m bars
('1h', '1m')
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from connectors.data.catalog import did_you_mean
from connectors.data.coverage import Coverage
from connectors.data.origins import SymbolNotFound
from connectors.data.questdb import table_name
from connectors.data.seamless.errors import BackfillError, DataNotFound
from connectors.data.seamless.layers import Layers
from qmtl.core.intervals import INTERVALS, interval_ns


@dataclass
class Plan:
    """What serving one (symbol, interval, range) takes: the source interval and range."""

    symbol: str
    interval: str
    start: int
    end: int
    source: str  # the stored interval the bars come from (== interval unless resampled)
    src_start: int = 0
    src_end: int = 0
    notes: list[str] = field(default_factory=list)


def inside(ts: np.ndarray, covered: Coverage, start: int, end: int) -> np.ndarray:
    """Mask of ``ts`` within ``[start, end]`` and within a covered range (so a bucket whose
    first part lies before what is known is not served as if it were whole).

    >>> inside(np.array([1, 5, 9]), Coverage([(0, 6)]), 2, 9).tolist()
    [False, True, False]
    """
    keep = np.zeros(len(ts), dtype=bool)
    for a, b in covered.ranges:
        keep |= (ts >= max(a, start)) & (ts <= min(b, end))
    return keep


class Planner:
    """Plans requests over ``layers`` (see the module docstring)."""

    def __init__(self, layers: Layers) -> None:
        self.layers = layers

    def coverage(self, symbol: str, interval: str) -> Coverage:
        """The ranges known complete for ``symbol`` at ``interval`` (cache and catalog; for an
        interval served by resampling, the buckets its source covers)."""
        catalog = self.layers.catalog
        source = self.source_interval(symbol, interval)
        if source == interval:
            cov = catalog.covered(symbol, interval)
            for a, b in self.layers.cache.covered(symbol, interval).ranges:
                cov.add(a, b)
            return cov
        step = interval_ns(interval)
        out = Coverage()
        for a, b in catalog.covered(symbol, source).ranges:
            first = -(-(a + step - interval_ns(source)) // step) * step
            last = b // step * step
            if first <= last:
                out.add(first, last)
        return out

    def source_interval(self, symbol: str, interval: str) -> str:
        """The interval to read: ``interval`` itself, or the coarsest finer interval the
        catalog holds for ``symbol`` that divides it (served by resampling)."""
        stored = self.layers.catalog.intervals(symbol)
        if interval in stored or interval not in INTERVALS:
            return interval
        if self.layers.questdb is not None and self.questdb_span(symbol, interval) is not None:
            return interval
        step = interval_ns(interval)
        finer = [i for i in stored if i in INTERVALS and interval_ns(i) < step
                 and step % interval_ns(i) == 0]
        return max(finer, key=interval_ns) if finer else interval

    def questdb_span(self, symbol: str, interval: str) -> tuple[int, int, int] | None:
        """First, last bar and rows QuestDB holds for ``symbol`` (None: none, or no QuestDB)."""
        questdb = self.layers.questdb
        if questdb is None:
            return None
        try:
            return questdb.span(symbol, interval)
        except Exception as exc:
            raise BackfillError(f"QuestDB ({getattr(questdb, 'name', 'questdb')}): "
                                f"cannot ask for {symbol!r} at {interval}: {exc}") from None

    def plan(self, symbol: str, interval: str, start: int | None, end: int | None) -> Plan:
        """The plan of a request: its source interval and the ranges to read."""
        source = self.source_interval(symbol, interval)
        lo, hi = self.resolve(symbol, interval, source, start, end)
        plan = Plan(symbol, interval, lo, hi, source, lo, hi)
        if source != interval:
            step, src = interval_ns(interval), interval_ns(source)
            first_bucket = -(-lo // step) * step
            plan.src_start = first_bucket - step + src
            plan.src_end = hi // step * step
            if plan.src_end < plan.src_start:
                plan.src_end = plan.src_start - 1  # no whole bucket in the range
        return plan

    def resolve(self, symbol: str, interval: str, source: str,
                start: int | None, end: int | None) -> tuple[int, int]:
        """Fill an open ``start``/``end`` from what the layers have."""
        if start is not None and end is not None:
            return start, end
        layers = self.layers
        have = layers.catalog.covered(symbol, source)
        firsts, lasts = [], []
        if have.ranges:
            firsts.append(have.ranges[0][0])
            lasts.append(have.ranges[-1][1])
        held = self.questdb_span(symbol, source) if source == interval else None
        if held is not None:
            firsts.append(held[0])
            lasts.append(held[1])
        origin_span = getattr(layers.origin, "span", None)
        origin_said = None
        if layers.origin is not None and (start is None or end is None) and origin_span:
            try:
                got = origin_span(symbol, source)
            except SymbolNotFound as exc:
                got, origin_said = None, str(exc)
            if got is not None:
                firsts.append(got[0])
                lasts.append(got[1])
        elif layers.origin is not None and end is None:
            lasts.append(layers.clock())
        if start is None and not firsts:
            if layers.origin is not None and not origin_span:
                raise ValueError(
                    f"no {source} bars for {symbol!r} are stored yet and origin "
                    f"{layers.origin.name} cannot say where its history starts: give a start"
                )
            raise self.not_found(symbol, interval, start, end, origin_said)
        lo = min(firsts) if start is None else start
        hi = (max(lasts) if lasts else lo) if end is None else end
        return lo, hi

    def not_found(self, symbol: str, interval: str, start: int | None, end: int | None,
                  origin_said: str | None = None) -> DataNotFound:
        """The error for bars no layer has, naming what each layer said."""
        layers, catalog = self.layers, self.layers.catalog
        source = self.source_interval(symbol, interval)
        looked = ["cache (nothing held)"]
        stored = catalog.symbols(interval)
        hint = "" if catalog.symbols() else ": try `qmtl data demo` or `qmtl data import`"
        looked.append(
            f"catalog {catalog.root} (no symbol={symbol}/interval={interval}; "
            f"symbols at {interval}: {', '.join(stored) or 'none'}{hint}"
            + (f"; {symbol} has {', '.join(catalog.intervals(symbol))}"
               if catalog.intervals(symbol) else "") + ")"
        )
        if source != interval:
            looked.append(f"resampling from {source} (nothing stored in the range)")
        if layers.questdb is not None:
            table = table_name(getattr(layers.questdb, "table", "bars_{interval}"), interval)
            looked.append(f"{getattr(layers.questdb, 'name', 'questdb')} table {table} "
                          f"(no rows for {symbol!r})")
        else:
            looked.append("QuestDB (not configured: QMTL_QUESTDB)")
        if layers.origin is not None:
            looked.append(origin_said or f"origin {layers.origin.name} (no bars)")
        else:
            looked.append("backfill origin (not configured: QMTL_ORIGIN or --origin)")
        return DataNotFound(symbol, interval, start, end, looked,
                            headline=f"unknown symbol {symbol!r} at interval {interval}"
                            + _suggest(symbol, catalog.symbols())
                            if not catalog.intervals(symbol) else None)


def _suggest(symbol: str, names: list[str]) -> str:
    """`` (did you mean 'X'?)`` for a mistyped symbol, else empty.

    >>> _suggest("GOOGL", ["GOOG"]), _suggest("Z", ["GOOG"])
    (" (did you mean 'GOOG'?)", '')
    """
    said = did_you_mean(symbol, names).strip()
    return f" ({said})" if said else ""
