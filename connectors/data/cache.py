"""An in-memory LRU cache of bars, bounded by bytes: the first layer the data provider asks.

Per (symbol, interval) it holds the bars of the ranges put into it and their coverage; a
request is a hit only when the whole range is covered. The least recently used entries are
evicted once the total exceeds ``max_bytes``; an entry larger than the bound is not kept.
Arrays handed out are read-only views, so a caller cannot change what the next one gets.

>>> import numpy as np
>>> cache = BarCache(max_bytes=10_000)
>>> bars = {c: np.arange(1.0, 4.0) for c in ("open", "high", "low", "close", "volume")}
>>> bars["ts"] = np.array([10, 20, 30])
>>> cache.put("A", "1m", 10, 30, bars)
>>> cache.get("A", "1m", 15, 30)["ts"].tolist()
[20, 30]
>>> cache.get("A", "1m", 0, 30) is None, cache.stats
(True, {'hits': 1, 'misses': 1, 'evictions': 0})
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from connectors.data.coverage import Coverage
from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS

DEFAULT_CACHE_BYTES = 512 * 2**20
"""Default bound of the cache: 512 MiB (about 11 M bars)."""


@dataclass
class _Entry:
    coverage: Coverage
    bars: Batch

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in self.bars.values())


def _frozen(batch: Batch) -> Batch:
    out = {}
    for c in BAR_COLUMNS:
        v = np.asarray(batch[c])
        if v.flags.writeable:
            v = v.view()
            v.flags.writeable = False
        out[c] = v
    return out


def _slice(bars: Batch, start: int, end: int) -> Batch:
    ts = bars["ts"]
    lo = int(np.searchsorted(ts, start, side="left"))
    hi = int(np.searchsorted(ts, end, side="right"))
    return {c: v[lo:hi] for c, v in bars.items()}


class BarCache:
    """LRU bar cache bounded by ``max_bytes`` (see the module docstring); thread-safe."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"cache size must be >= 0 bytes, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = {"hits": 0, "misses": 0, "evictions": 0}

    @property
    def nbytes(self) -> int:
        """Bytes held now."""
        return self._bytes

    def covered(self, symbol: str, interval: str) -> Coverage:
        """What the cache holds for ``symbol`` at ``interval`` (a copy)."""
        with self._lock:
            entry = self._entries.get((symbol, interval))
            return Coverage(entry.coverage.ranges) if entry else Coverage()

    def get(self, symbol: str, interval: str, start: int, end: int) -> Batch | None:
        """The bars with ``start <= ts <= end`` if the cache covers that range, else None."""
        key = (symbol, interval)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not entry.coverage.contains(start, end):
                self.stats["misses"] += 1
                return None
            self._entries.move_to_end(key)
            self.stats["hits"] += 1
            return _slice(entry.bars, start, end)

    def put(self, symbol: str, interval: str, start: int, end: int, bars: Batch) -> None:
        """Remember ``bars`` as every bar of ``symbol`` with ``start <= ts <= end``."""
        key = (symbol, interval)
        new = _frozen(bars)
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry.nbytes
                merged = {c: np.concatenate([entry.bars[c], new[c]]) for c in BAR_COLUMNS}
                ts = merged["ts"]
                # the new bars win over held ones at the same ts
                last = np.unique(ts[::-1], return_index=True)[1]
                keep = np.sort(len(ts) - 1 - last)
                keep = keep[np.argsort(ts[keep], kind="stable")]
                new = _frozen({c: v[keep] for c, v in merged.items()})
                coverage = entry.coverage.add(start, end)
            else:
                coverage = Coverage([(start, end)])
            fresh = _Entry(coverage, new)
            if fresh.nbytes > self.max_bytes:
                self.stats["evictions"] += 1
                return
            self._entries[key] = fresh
            self._bytes += fresh.nbytes
            while self._bytes > self.max_bytes:
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.nbytes
                self.stats["evictions"] += 1

    def invalidate(self, symbol: str | None = None, interval: str | None = None) -> None:
        """Forget ``symbol`` at ``interval`` (or everything of a symbol, or all)."""
        with self._lock:
            for key in list(self._entries):
                if symbol not in (None, key[0]) or interval not in (None, key[1]):
                    continue
                self._bytes -= self._entries.pop(key).nbytes
