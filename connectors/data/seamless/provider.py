"""The facade: :class:`SeamlessDataProvider` keeps the provider's public API over its three
jobs, each in its own module: :mod:`.plan` (which layer and interval serve which range),
:mod:`.backfill` (fetching and writing missing ranges under the catalog's lock) and
:mod:`.stream` (reading and streaming batches).

>>> import tempfile
>>> from connectors.data.synthetic import generate_bars
>>> data = SeamlessDataProvider(tempfile.mkdtemp(), cache_bytes=2**20)
>>> _ = data.catalog.write("A", "1d", generate_bars(10, interval="1d"))
>>> len(data.read("A", "1d")["ts"]), data.plan_rows(["A"], "1d")
(10, {'A': 10})
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from connectors.data.cache import DEFAULT_CACHE_BYTES
from connectors.data.catalog import Catalog
from connectors.data.coverage import Coverage
from connectors.data.origin_spec import origin_from_spec
from connectors.data.origins import Origin
from connectors.data.questdb import QuestDBReader, QuestDBWriter
from connectors.data.seamless.backfill import Backfiller
from connectors.data.seamless.layers import Fetch, FetchProgress, Layers
from connectors.data.seamless.plan import Plan, Planner
from connectors.data.seamless.stream import Reader
from qmtl.core.bars import Batch


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


class SeamlessDataProvider(Layers):
    """Bars from cache -> catalog -> QuestDB -> backfill origin (see
    :mod:`connectors.data.seamless`).

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
        super().__init__(catalog, questdb=questdb, origin=origin, writer=writer,
                         cache_bytes=cache_bytes, progress=progress, clock=clock)
        self.planner = Planner(self)
        self.backfiller = Backfiller(self, self.planner)
        self.reader = Reader(self, self.planner, self.backfiller)

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
        e = os.environ if env is None else env
        if isinstance(origin, str):
            origin = origin_from_spec(origin)
        elif origin is None and e.get("QMTL_ORIGIN"):
            origin = origin_from_spec(e["QMTL_ORIGIN"])
        if isinstance(questdb, str):
            questdb = QuestDBReader(questdb)
        elif questdb is None and e.get("QMTL_QUESTDB"):
            questdb = QuestDBReader(e["QMTL_QUESTDB"])
        writer = QuestDBWriter(e["QMTL_QUESTDB_ILP"]) if e.get("QMTL_QUESTDB_ILP") else None
        size = parse_bytes(e["QMTL_CACHE_BYTES"]) if e.get("QMTL_CACHE_BYTES") else None
        if catalog is None and e.get("QMTL_DATA"):
            catalog = Path(e["QMTL_DATA"]).expanduser()
        return cls(catalog, questdb=questdb, origin=origin, writer=writer,
                   cache_bytes=size if size is not None else DEFAULT_CACHE_BYTES,
                   progress=progress)

    def coverage(self, symbol: str, interval: str) -> Coverage:
        """The ranges known complete for ``symbol`` at ``interval`` (cache and catalog; for an
        interval served by resampling, the buckets its source covers)."""
        return self.planner.coverage(symbol, interval)

    def ensure(self, symbol: str, interval: str, start: int, end: int) -> list[Fetch]:
        """Make the catalog cover ``[start, end]`` of ``symbol`` at ``interval`` (the stored
        interval): fill each missing range from QuestDB, then the origin; return the fetches
        made (see :meth:`connectors.data.seamless.backfill.Backfiller.ensure`)."""
        return self.backfiller.ensure(symbol, interval, start, end)

    def prepare(self, symbol: str, interval: str, start: int | None = None,
                end: int | None = None) -> Plan:
        """Resolve the range and fill the catalog for it; return the plan to read it."""
        return self.reader.prepare(symbol, interval, start, end)

    def read(self, symbol: str, interval: str, start: int | None = None,
             end: int | None = None) -> Batch:
        """Every bar of ``symbol`` at ``interval`` with ``start <= ts <= end`` (an open end:
        what the layers have), from the cheapest layer; raises :class:`DataNotFound`."""
        return self.reader.read(symbol, interval, start, end)

    def plan_rows(self, symbols: Sequence[str], interval: str, start: int | None = None,
                  end: int | None = None) -> dict[str, int]:
        """Fill what is missing for every symbol (progress shown per fetch) and return the
        bars each will serve; raises :class:`DataNotFound` naming the first unknown symbol."""
        return self.reader.plan_rows(symbols, interval, start, end)

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
        return self.reader.iter_batches(symbols, interval, start, end, batch_size)
