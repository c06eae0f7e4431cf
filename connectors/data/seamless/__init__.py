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

The work is split by job: :mod:`.plan` decides which layer and interval serve which range,
:mod:`.backfill` fetches and writes the missing ranges under the lock, :mod:`.stream` (with
:mod:`.cold`) reads and streams batches; :mod:`.provider` is the facade over them.

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

from connectors.data.seamless.errors import BackfillError, DataNotFound, describe_errors, span
from connectors.data.seamless.layers import Fetch, FetchProgress, NullProgress
from connectors.data.seamless.provider import SeamlessDataProvider, parse_bytes
from connectors.data.seamless.stream import BAR_BYTES

__all__ = ["BAR_BYTES", "BackfillError", "DataNotFound", "Fetch", "FetchProgress",
           "NullProgress", "SeamlessDataProvider", "describe_errors", "parse_bytes", "span"]
