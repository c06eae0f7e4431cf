"""``qmtl.backtest``: replay history through a strategy on the compiled Bytewax graph.

>>> import numpy as np
>>> from qmtl import Strategy
>>> from connectors.data.synthetic import generate_bars
>>> class SmaCross(Strategy):
...     symbols = ["AAPL"]
...     fast: int = 10
...     slow: int = 50
...     def signal(self, bars):
...         return bars.close.sma(self.fast) > bars.close.sma(self.slow)
>>> result = backtest(SmaCross, data={"AAPL": generate_bars(500, seed=1)}, fast=5)
>>> len(result.returns), sorted(result.metrics)[:3]
(500, ['cagr', 'calmar', 'exposure'])
>>> bool(np.isclose(result.equity[-1], np.prod(1 + result.returns)))
True
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.data.seamless import BackfillError, SeamlessDataProvider
from dataflows.compiler import OnBad, StrategyOutput, StrategySpec, build_program, run_dataflow
from dataflows.control import RunControl
from qmtl.core.errors import QmtlError
from qmtl.core.fingerprint import dataset_fingerprint
from qmtl.core.intervals import periods_per_year as default_ppy
from qmtl.core.times import parse_time
from qmtl.pages import small_pages
from qmtl.strategy import Strategy, StrategyError

DataArg = Any  # None | str | Path | Catalog | SeamlessDataProvider | Mapping[str, batch]


class BacktestError(QmtlError, ValueError):
    """A backtest could not run: bad data, range or arguments (the message says which)."""


SERIES = ("ts", "returns", "equity", "turnover", "gross")
"""The per-bar portfolio series of a :class:`BacktestResult`, in column order."""


@dataclass
class BacktestResult:
    """What a backtest produced: per-bar portfolio series, per-symbol rows and metrics.

    The series (``ts``, ``returns``, ``equity``, ``turnover``, ``gross``) are kept as the
    replay's batches and joined into one array the first time each is read, so a caller
    that wants only the metrics never pays for them.

    >>> import numpy as np, pyarrow as pa
    >>> r = BacktestResult("S", {}, ["A"], "1d", pa.table({"ts": [1, 2]}), {"sharpe": 1.0},
    ...                    series={"ts": [np.array([1]), np.array([2])],
    ...                            "returns": [np.array([0.0]), np.array([0.5])]})
    >>> r.returns.tolist(), r.ts.tolist()
    ([0.0, 0.5], [1, 2])
    """

    strategy: str
    params: dict[str, Any]
    symbols: list[str]
    interval: str
    bars: pa.Table
    metrics: dict[str, float]
    history: list[tuple[int, int, dict[str, float], np.ndarray]] = field(default_factory=list)
    """``(n_bars, as_of, metrics, returns since previous)`` at each metrics snapshot."""
    data: dict[str, Any] = field(default_factory=dict)
    """What the run saw: ``fingerprint``, ``as_of`` (when it read the data, ns), the
    ``requested`` range, per symbol first/last bar, rows and a content hash (see
    :mod:`qmtl.core.fingerprint`), and what was ``fetched`` from QuestDB or an origin for it."""
    dropped_bars: int = 0
    series: dict[str, np.ndarray | list[np.ndarray]] = field(default_factory=dict, repr=False)
    """Each series as one array, or as the list of its batches' arrays until first read."""

    def _series(self, name: str) -> np.ndarray:
        value = self.series.get(name)
        if value is None:
            value = np.empty(0, dtype=np.int64 if name == "ts" else np.float64)
        elif isinstance(value, list):
            # a copy even of one batch: the batches' arrays also back ``bars``
            value = value[0].copy() if len(value) == 1 else np.concatenate(value)
        self.series[name] = value
        return value

    @property
    def ts(self) -> np.ndarray:
        """Bar close times (ns since the epoch, UTC), one per portfolio row."""
        return self._series("ts")

    @property
    def returns(self) -> np.ndarray:
        """The portfolio's return over each bar, net of costs."""
        return self._series("returns")

    @property
    def equity(self) -> np.ndarray:
        """Equity after each bar, compounding from 1.0."""
        return self._series("equity")

    @property
    def turnover(self) -> np.ndarray:
        """Sum of absolute weight changes at each bar."""
        return self._series("turnover")

    @property
    def gross(self) -> np.ndarray:
        """Gross exposure (sum of absolute weights) held after each bar."""
        return self._series("gross")

    def to_pandas(self) -> Any:
        """The portfolio series as a pandas DataFrame indexed by UTC time (needs pandas)."""
        import pandas as pd

        index = pd.to_datetime(self.ts, unit="ns", utc=True)
        return pd.DataFrame(
            {
                "return": self.returns,
                "equity": self.equity,
                "turnover": self.turnover,
                "gross": self.gross,
            },
            index=index,
        )

    def write(self, out: str | Path) -> Path:
        """Write ``bars.parquet`` (ts, symbol, weight, return, equity) and ``metrics.json``."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".bars.parquet.tmp"
        pq.write_table(self.bars, tmp)
        tmp.replace(folder / "bars.parquet")
        doc = {
            "strategy": self.strategy,
            "params": self.params,
            "symbols": self.symbols,
            "interval": self.interval,
            "start": int(self.ts[0]) if len(self.ts) else None,
            "end": int(self.ts[-1]) if len(self.ts) else None,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "data": self.data,
            "dropped_bars": self.dropped_bars,
        }
        (folder / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
        return folder


def make_strategy(strategy: type[Strategy] | Strategy, params: Mapping[str, Any]) -> Strategy:
    """An instance of ``strategy`` with ``params`` applied.

    >>> class S(Strategy):
    ...     n: int = 1
    >>> make_strategy(S, {"n": "4"}).n
    4
    """
    if isinstance(strategy, Strategy):
        if params:
            return type(strategy)(**{**_instance_params(strategy), **params})
        return strategy
    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise StrategyError(f"expected a Strategy subclass, got {strategy!r}")
    return strategy(**params)


def _instance_params(s: Strategy) -> dict[str, Any]:
    return {k: getattr(s, k) for k in type(s).parameters()}


def _to_ns(value: str | int | None, what: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_time(value)
    except ValueError as exc:
        raise BacktestError(f"{what}: {exc}") from None


def resolve_source(
    data: DataArg,
    symbols: list[str],
    interval: str,
    start: int | None,
    end: int | None,
    batch_size: int | Sequence[int],
) -> tuple[Callable[[], Iterator[tuple[str, dict[str, np.ndarray]]]], int]:
    """A factory of time-aligned ``(symbol, batch)`` items for the run, and the bar count."""
    from connectors.data.memory import aligned_batches

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
            raise BacktestError(_empty_message(symbols, start, end))
        return (lambda: aligned_batches(sliced, batch_size, symbols)), total

    provider = as_provider(data)
    try:
        rows = provider.plan_rows(symbols, interval, start, end)
    except (LookupError, ValueError, BackfillError) as exc:
        raise BacktestError(str(exc)) from None
    if sum(rows.values()) == 0:
        raise BacktestError(_empty_message(symbols, start, end))
    return (
        lambda: provider.iter_batches(symbols, interval, start, end, batch_size)
    ), sum(rows.values())


def lookback_start(
    data: DataArg, symbols: list[str], interval: str, start: int, bars: int
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


def last_bars(data: Any, symbol: str, interval: str, end: int, n: int) -> dict[str, np.ndarray]:
    """The last ``n`` bars of ``symbol`` at or before ``end`` from a data provider: a window
    of 4 times ``n`` bars' worth of time through every layer (a backfill origin may fill it),
    then, if that holds fewer (weekends, closed sessions), wider windows of what the catalog
    already has (64, then 1,024 times), never asking an origin for all of history.

    >>> import tempfile
    >>> from connectors.data.catalog import Catalog
    >>> from connectors.data.synthetic import generate_bars
    >>> bars = generate_bars(30)
    >>> cat = Catalog(tempfile.mkdtemp()); _ = cat.write("A", "1d", bars)
    >>> b = last_bars(SeamlessDataProvider(cat), "A", "1d", int(bars["ts"][20]), 5)
    >>> b["ts"].tolist() == bars["ts"][16:21].tolist()
    True
    """
    from connectors.data.catalog import CatalogError
    from qmtl.core.intervals import interval_ns

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


def as_provider(data: DataArg) -> SeamlessDataProvider:
    """The data provider for ``data``: a provider as is; else the environment's provider
    (``SeamlessDataProvider.from_env``) over ``data`` as the catalog (a folder or Catalog;
    None: ``$QMTL_DATA`` or ``~/.qmtl/data``).

    >>> as_provider("/tmp/nowhere").catalog.root.as_posix()
    '/tmp/nowhere'
    """
    if isinstance(data, SeamlessDataProvider):
        return data
    return SeamlessDataProvider.from_env(data)


def _empty_message(symbols: list[str], start: int | None, end: int | None) -> str:
    from qmtl.core.times import format_ts

    lo = format_ts(start) if start is not None else "the beginning"
    hi = format_ts(end) if end is not None else "the end"
    return f"no bars for {', '.join(symbols)} between {lo} and {hi}"


def to_spec(
    s: Strategy, symbols: list[str], ppy: float | None, key: str | None = None
) -> StrategySpec:
    """The engine's view of a strategy instance.

    >>> class S(Strategy):
    ...     symbols = ["A"]
    ...     def signal(self, bars):
    ...         return bars.close > 0
    >>> to_spec(S(), ["A"], None).periods_per_year
    252.0
    """
    return StrategySpec(
        key=key or s.name,
        symbols=list(symbols),
        weight=s.target(),
        cost_bps=float(s.cost_bps),
        max_gross=float(s.max_gross),
        periods_per_year=float(ppy or default_ppy(s.interval)),
    )


def backtest(
    strategy: type[Strategy] | Strategy,
    data: DataArg = None,
    *,
    symbols: list[str] | None = None,
    start: str | int | None = None,
    end: str | int | None = None,
    cost_bps: float | None = None,
    batch_size: int | Sequence[int] = 10_000,
    workers: int = 1,
    periods_per_year: float | None = None,
    on_bad_bars: OnBad = "raise",
    progress: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_output: Callable[[StrategyOutput], None] | None = None,
    metrics_every: int = 1_000,
    **params: Any,
) -> BacktestResult:
    """Replay ``data`` through ``strategy``; return its returns, equity and metrics.

    ``data``: a :class:`connectors.data.seamless.SeamlessDataProvider`, a catalog folder or
    :class:`connectors.data.catalog.Catalog` (served by the environment's provider over it:
    missing ranges are backfilled when ``QMTL_ORIGIN`` or ``QMTL_QUESTDB`` is set; default:
    the local catalog), or a mapping ``symbol -> bar batch`` held in memory. ``params`` override the
    strategy's parameters. ``batch_size`` sets the replay batch (results do not depend on
    it; a sequence of sizes is used in turn, for testing); ``workers`` runs that many
    Bytewax workers, symbols partitioned by key.
    ``on_start(total_bars)`` and ``progress(bars_done)`` report progress; ``on_output`` sees
    each engine output (portfolio rows and metrics so far) as soon as it is produced;
    metrics are snapshotted every ``metrics_every`` bars and at the end.
    """
    sizes = [batch_size] if isinstance(batch_size, int) else list(batch_size)
    if not sizes or min(sizes) < 1:
        raise BacktestError(f"batch size must be >= 1, got {batch_size}")
    if workers < 1:
        raise BacktestError(f"workers must be >= 1, got {workers}")
    s = make_strategy(strategy, params)
    if cost_bps is not None:
        if not (math.isfinite(cost_bps) and cost_bps >= 0):
            raise BacktestError(f"cost_bps must be a finite number >= 0, got {cost_bps}")
        s.cost_bps = float(cost_bps)
    universe = list(symbols or s.symbols)
    if not universe:
        raise BacktestError(
            f"{s.name} has no symbols: set `symbols = [...]` on the class or pass --symbols"
        )
    start_ns, end_ns = _to_ns(start, "start"), _to_ns(end, "end")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise BacktestError(f"empty date range: start {start} is after end {end}")
    provider = None if isinstance(data, Mapping) else as_provider(data)
    fetched_before = len(provider.fetches) if provider is not None else 0
    spec = to_spec(s, universe, periods_per_year)
    # the look-back before --start: those bars warm the kernels up, the portfolio starts at it
    source = data if provider is None else provider
    make_items, total = resolve_source(  # also checks that [start, end] has bars
        source, universe, s.interval, start_ns, end_ns, batch_size
    )
    lookback = s.warmup if s.warmup is not None else build_program([spec]).lookback
    read_from = start_ns
    if start_ns is not None and lookback > 0:
        read_from = lookback_start(source, universe, s.interval, start_ns, lookback)
        if read_from != start_ns:
            make_items, total = resolve_source(
                source, universe, s.interval, read_from, end_ns, batch_size
            )
    if on_start is not None:
        on_start(total)
    control = RunControl(progress)
    as_of = time.time_ns()
    with small_pages():  # see qmtl.pages: fresh large arrays without huge-page compaction
        outputs = run_dataflow(
            [spec],
            make_items,
            workers=workers,
            on_bad=on_bad_bars,
            progress=progress,
            on_output=on_output,
            metrics_every=metrics_every,
            control=control,
            signals_from=start_ns if read_from != start_ns else None,
        )
    result = collect_result(s, universe, outputs)
    symbols_seen = {sym: h.summary() for sym, h in sorted(control.seen.items())}
    result.data = {
        "fingerprint": dataset_fingerprint(symbols_seen, s.interval),
        "as_of": as_of,
        "requested": {"start": start_ns, "end": end_ns},
        "lookback": {"bars": lookback, "from": read_from} if read_from != start_ns else None,
        "symbols": symbols_seen,
        "fetched": [
            {"layer": f.layer, "symbol": f.symbol, "interval": f.interval, "start": f.start,
             "end": f.end, "rows": f.rows}
            for f in (provider.fetches[fetched_before:] if provider is not None else [])
        ],
    }
    result.dropped_bars = control.dropped
    return result


def collect_result(
    s: Strategy, universe: list[str], outputs: list[StrategyOutput]
) -> BacktestResult:
    """Assemble a :class:`BacktestResult` from the flow's outputs for one strategy."""
    batches = [o.batch for o in outputs if o.batch is not None]
    snapshots = [o for o in outputs if o.metrics is not None]
    if not batches or not snapshots:
        raise BacktestError(f"{s.name}: no bars were processed")
    symbols = batches[0].symbols
    # each batch's rows are ordered by time then symbol, and batches follow in time; the
    # table's columns are the batches' arrays as chunks (no copy)
    rows = {k: [b.symbol_rows[k] for b in batches] for k in batches[0].symbol_rows}
    dictionary = pa.array(symbols)
    names = pa.chunked_array(
        [pa.DictionaryArray.from_arrays(pa.array(c), dictionary) for c in rows["symbol"]]
    )
    table = pa.table(
        {
            "ts": pa.chunked_array(rows["ts"], pa.int64()),
            "symbol": names,
            "weight": pa.chunked_array(rows["weight"], pa.float64()),
            "return": pa.chunked_array(rows["return"], pa.float64()),
            "equity": pa.chunked_array(rows["equity"], pa.float64()),
        }
    )
    history = [(o.n_bars, o.as_of, o.metrics, o.returns_since) for o in snapshots]
    return BacktestResult(
        strategy=s.name,
        params=_instance_params(s),
        symbols=universe,
        interval=s.interval,
        bars=table,
        metrics=snapshots[-1].metrics,
        history=history,
        series={name: [getattr(b, name) for b in batches] for name in SERIES},
    )
