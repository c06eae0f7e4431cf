"""The layers a seamless provider asks and what it records, shared by its three jobs (plan,
backfill, stream): catalog, cache, QuestDB, origin, the QuestDB writer, progress, the clock,
and the fetches, notes and counters of its requests.

>>> import tempfile
>>> layers = Layers(tempfile.mkdtemp())
>>> layers.count("backfills"); layers.stats["backfills"]
1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from connectors.data.cache import DEFAULT_CACHE_BYTES, BarCache
from connectors.data.catalog import Catalog, default_data_dir
from connectors.data.origins import Origin
from connectors.data.seamless.errors import span


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
    """One fetch a provider made: which layer, what, and how many bars came back.

    >>> print(Fetch("folder:/o", "X", "1d", 0, 86_400 * 10**9, 2))
    folder:/o: 2 1d bars of X for 1970-01-01T00:00:00Z .. 1970-01-02T00:00:00Z
    """

    layer: str
    symbol: str
    interval: str
    start: int
    end: int
    rows: int

    def __str__(self) -> str:
        return (f"{self.layer}: {self.rows:,} {self.interval} bars of {self.symbol} "
                f"for {span(self.start, self.end)}")


STATS = ("cache_hits", "catalog_reads", "questdb_reads", "backfills", "backfill_rows",
         "resampled")


class Layers:
    """What the jobs of a provider share (see the module docstring); the arguments are those
    of :class:`connectors.data.seamless.SeamlessDataProvider`."""

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
        self._stats = dict.fromkeys(STATS, 0)
        self._lock = threading.Lock()

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``cache_hits``, ``catalog_reads``, ``questdb_reads``, ``backfills`` (origin
        fetch calls), ``backfill_rows``, ``resampled`` (bars made by resampling)."""
        with self._lock:
            return dict(self._stats)

    def count(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        with self._lock:
            self._stats[name] += n

    def note(self, text: str) -> None:
        """Remember ``text`` for the user (once)."""
        with self._lock:
            if text not in self.notes:
                self.notes.append(text)

    def log(self, fetch: Fetch) -> Fetch:
        """Record ``fetch``; return it."""
        with self._lock:
            self.fetches.append(fetch)
        return fetch
