"""Where a backtest's bars come from: the ``data`` argument of :func:`qmtl.backtest`.

``data`` is a :class:`~connectors.data.seamless.SeamlessDataProvider`, a catalog folder or
:class:`~connectors.data.catalog.Catalog` (served by the environment's provider over it),
``None`` (the environment's catalog: ``$QMTL_DATA`` or ``~/.qmtl/data``), or a mapping
``symbol -> bar batch`` held in memory.

>>> import numpy as np
>>> bars = {"A": {"ts": np.arange(5), "close": np.ones(5)}}
>>> make_items, total = resolve_source(bars, ["A"], "1d", 1, 3, 10)
>>> total, [b["ts"].tolist() for _, b in make_items()]
(3, [[1, 2, 3]])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from connectors.data.catalog import Catalog, CatalogError
from connectors.data.memory import aligned_batches
from connectors.data.seamless import BackfillError, SeamlessDataProvider
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError
from qmtl.core.intervals import interval_ns
from qmtl.core.times import format_ts

DataSource = SeamlessDataProvider | Catalog | str | Path | Mapping[str, Batch] | None
"""What :func:`qmtl.backtest` accepts as ``data`` (see the module docstring)."""

ItemFactory = Callable[[], Iterator[tuple[str, Batch]]]
"""Makes the run's time-aligned ``(symbol, batch)`` items (called once per run)."""


class BacktestError(QmtlError, ValueError):
    """A backtest could not run: bad data, range or arguments (the message says which).

    >>> resolve_source({"A": {"ts": np.arange(3)}}, ["B"], "1d", None, None, 10)
    Traceback (most recent call last):
    ...
    qmtl.sources.BacktestError: unknown symbol 'B': available: A
    """


def resolve_source(
    data: DataSource,
    symbols: list[str],
    interval: str,
    start: int | None,
    end: int | None,
    batch_size: int | Sequence[int],
) -> tuple[ItemFactory, int]:
    """A factory of time-aligned ``(symbol, batch)`` items of ``symbols`` between ``start``
    and ``end`` (ns, inclusive; None: unbounded), and how many bars it yields; raises
    :class:`BacktestError` when a symbol is unknown or the range holds no bars."""
    if isinstance(data, Mapping):
        missing = [s for s in symbols if s not in data]
        if missing:
            raise BacktestError(
                f"unknown symbol {missing[0]!r}: available: {', '.join(sorted(data)) or 'none'}"
            )
        sliced = {}
        for s in symbols:
            batch = {k: np.asarray(v) for k, v in data[s].items()}
            ts = batch["ts"]
            lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
            hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="right"))
            sliced[s] = {k: v[lo:hi] for k, v in batch.items()}
        total = sum(len(b["ts"]) for b in sliced.values())
        if total == 0:
            raise BacktestError(empty_message(symbols, start, end))
        return (lambda: aligned_batches(sliced, batch_size, symbols)), total

    provider = as_provider(data)
    try:
        rows = provider.plan_rows(symbols, interval, start, end)
    except (LookupError, ValueError, BackfillError) as exc:
        raise BacktestError(str(exc)) from None
    if sum(rows.values()) == 0:
        raise BacktestError(empty_message(symbols, start, end))
    return (
        lambda: provider.iter_batches(symbols, interval, start, end, batch_size)
    ), sum(rows.values())


def lookback_start(
    data: SeamlessDataProvider | Mapping[str, Batch], symbols: list[str], interval: str,
    start: int, bars: int,
) -> int:
    """The time from which ``bars`` bars of every symbol come before ``start`` (so the
    kernels are warm at ``start``); ``start`` when there is no history before it.

    >>> d = {"A": {"ts": np.arange(10) * 10}}
    >>> lookback_start(d, ["A"], "1d", 50, 3)
    20
    """
    first = start
    for s in symbols:
        if isinstance(data, Mapping):
            ts = np.asarray(data[s]["ts"]) if s in data else np.empty(0, np.int64)
            ts = ts[ts < start]
        else:
            try:
                ts = last_bars(data, s, interval, start - 1, bars)["ts"]
            except LookupError:
                continue  # the run itself says what is missing
        if len(ts):
            first = min(first, int(ts[max(0, len(ts) - bars)]))
    return first


def last_bars(
    data: SeamlessDataProvider, symbol: str, interval: str, end: int, n: int
) -> Batch:
    """The last ``n`` bars of ``symbol`` at or before ``end`` from a data provider: a window
    of 4 times ``n`` bars' worth of time through every layer (a backfill origin may fill it),
    then, if that holds fewer (weekends, closed sessions), wider windows of what the catalog
    already has (64, then 1,024 times), never asking an origin for all of history.

    >>> import tempfile
    >>> from connectors.data.synthetic import generate_bars
    >>> bars = generate_bars(30)
    >>> cat = Catalog(tempfile.mkdtemp()); _ = cat.write("A", "1d", bars)
    >>> b = last_bars(SeamlessDataProvider(cat), "A", "1d", int(bars["ts"][20]), 5)
    >>> b["ts"].tolist() == bars["ts"][16:21].tolist()
    True
    """
    step = interval_ns(interval) * (n + 10)
    bars = data.read(symbol, interval, end - 4 * step, end)
    for widen in (64, 1024):
        if len(bars["ts"]) >= n:
            break
        try:
            bars = data.catalog.read(symbol, interval, end - widen * step, end)
        except CatalogError:  # not stored at this interval (served by resampling)
            break
    return {k: v[max(0, len(v) - n):] for k, v in bars.items()}


def as_provider(data: SeamlessDataProvider | Catalog | str | Path | None) -> SeamlessDataProvider:
    """The data provider for ``data``: a provider as is; else the environment's provider
    (``SeamlessDataProvider.from_env``) over ``data`` as the catalog (a folder or Catalog;
    None: ``$QMTL_DATA`` or ``~/.qmtl/data``).

    >>> as_provider("/tmp/nowhere").catalog.root.as_posix()
    '/tmp/nowhere'
    """
    if isinstance(data, SeamlessDataProvider):
        return data
    return SeamlessDataProvider.from_env(data)


def empty_message(symbols: list[str], start: int | None, end: int | None) -> str:
    """What to say when ``[start, end]`` holds no bars of ``symbols``.

    >>> empty_message(["A"], 1704240000000000000, None)
    'no bars for A between 2024-01-03T00:00:00Z and the end'
    """
    lo = format_ts(start) if start is not None else "the beginning"
    hi = format_ts(end) if end is not None else "the end"
    return f"no bars for {', '.join(symbols)} between {lo} and {hi}"
