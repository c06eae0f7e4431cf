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

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from connectors.data.calendars import Calendar
from connectors.data.seamless import SeamlessDataProvider
from dataflows.compiler import (
    OnBad,
    StrategyOutput,
    StrategySpec,
    run_dataflow,
    spec_lookback,
)
from dataflows.control import RunControl
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError
from qmtl.core.fingerprint import dataset_fingerprint
from qmtl.core.intervals import periods_per_year as default_ppy
from qmtl.core.times import time_bound
from qmtl.pages import small_pages
from qmtl.result import SERIES, BacktestResult, ParamValue, json_settings
from qmtl.sources import (
    BacktestError,
    DataSource,
    as_provider,
    lookback_start,
    resolve_source,
)
from qmtl.strategy import Strategy, StrategyCodeError, StrategyError
from qmtl.usercode import code_frame, graph_code

__all__ = ["BacktestError", "BacktestResult", "backtest", "make_strategy", "to_spec"]


def make_strategy(
    strategy: type[Strategy] | Strategy, params: Mapping[str, ParamValue]
) -> Strategy:
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


def _instance_params(s: Strategy) -> dict[str, ParamValue]:
    return {k: getattr(s, k) for k in type(s).parameters()}


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
        measured=ppy is None,
        calendar=strategy_calendar(s),
        max_net=float(s.max_net),
        context=tuple(c for c in s.context if c not in symbols),
        interval=s.interval,
        execution=s.execution_settings(),
    )


def strategy_calendar(s: Strategy) -> Any:
    """The :class:`~connectors.data.calendars.Calendar` the strategy's ``calendar`` names
    (None: none, or ``auto``: the bars' own spacing then), for the annualization.

    >>> class S(Strategy):
    ...     calendar = "weekdays"
    >>> strategy_calendar(S()).kind, strategy_calendar(Strategy())
    ('weekdays', None)
    """
    if not s.calendar or s.calendar == "auto":
        return None
    try:
        return Calendar.parse(s.calendar)
    except QmtlError as exc:
        raise BacktestError(f"{s.name}.calendar: {exc}") from None


def backtest(
    strategy: type[Strategy] | Strategy,
    data: DataSource = None,
    *,
    symbols: Sequence[str] | None = None,
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
    **params: ParamValue,
) -> BacktestResult:
    """Replay ``data`` through ``strategy``; return its returns, equity and metrics.

    ``data``: a :class:`connectors.data.seamless.SeamlessDataProvider`, a catalog folder or
    :class:`connectors.data.catalog.Catalog` (served by the environment's provider over it:
    missing ranges are backfilled when ``QMTL_ORIGIN`` or ``QMTL_QUESTDB`` is set; default:
    the local catalog), or a mapping ``symbol -> bar batch`` held in memory (see
    :mod:`qmtl.sources`). ``symbols`` overrides the strategy's universe; ``start`` and
    ``end`` (ISO text or ns) bound the bars it trades, and the look-back before ``start``
    warms its indicators up. ``cost_bps`` overrides the strategy's cost per unit of turnover
    and ``periods_per_year`` the annualization of its interval; ``on_bad_bars`` is
    ``"raise"`` or ``"drop"``. ``params`` override the strategy's parameters.
    ``batch_size`` sets the replay batch (results do not depend on it; a sequence of sizes
    is used in turn, for testing); ``workers`` runs that many Bytewax workers, symbols
    partitioned by key. ``on_start(total_bars)`` and ``progress(bars_done)`` report
    progress; ``on_output`` sees each engine output (portfolio rows and metrics so far) as
    soon as it is produced; metrics are snapshotted every ``metrics_every`` bars and at the
    end.

    Errors: :class:`BacktestError` for bad data, range or arguments; a
    :class:`~qmtl.strategy.StrategyError` for a malformed strategy, and its subclass
    :class:`~qmtl.strategy.StrategyCodeError` when the strategy's own code (``signal``, an
    Operator, a ``rolling(...).apply`` function) raised, naming the user's file and line.
    """
    if periods_per_year is not None and not (
        math.isfinite(periods_per_year) and periods_per_year > 0
    ):
        raise BacktestError(f"periods_per_year must be a finite number > 0, got "
                            f"{periods_per_year}")
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
    start_ns = time_bound(start, "start", BacktestError)
    end_ns = time_bound(end, "end", BacktestError)
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise BacktestError(f"empty date range: start {start} is after end {end}")
    provider: SeamlessDataProvider | None = None
    source: SeamlessDataProvider | Mapping[str, Batch]
    if isinstance(data, Mapping):
        source = data
    else:
        source = provider = as_provider(data)
    fetched_before = len(provider.fetches) if provider is not None else 0
    spec = to_spec(s, universe, periods_per_year)
    loaded = universe + list(spec.context)  # context symbols are read, never traded
    # the look-back before --start: those bars warm the kernels up, the portfolio starts at it
    make_items, total = resolve_source(  # also checks that [start, end] has bars
        source, loaded, s.interval, start_ns, end_ns, batch_size
    )
    lookback = s.warmup if s.warmup is not None else spec_lookback(spec)
    read_from = start_ns
    if start_ns is not None and lookback > 0:
        read_from = lookback_start(source, loaded, s.interval, start_ns, lookback)
        if read_from != start_ns:
            make_items, total = resolve_source(
                source, loaded, s.interval, read_from, end_ns, batch_size
            )
    if on_start is not None:
        on_start(total)
    control = RunControl(progress)
    as_of = time.time_ns()
    user_code = graph_code([spec.weight])
    try:
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
    except QmtlError:
        raise
    except Exception as exc:  # the strategy's Operator or apply function failed: say where
        frame = code_frame(exc, user_code)
        if frame is None:
            raise
        raise StrategyCodeError.wrap(f"{s.name} failed during the run", exc, frame) from exc
    result = collect_result(s, universe, outputs)
    annual = next(o.annualization for o in reversed(outputs) if o.annualization is not None)
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
    result.settings = json_settings(
        {
            "cost_bps": spec.cost_bps,
            "max_gross": spec.max_gross,
            "max_net": spec.max_net if math.isfinite(spec.max_net) else None,
            "context": list(spec.context),
            "periods_per_year": annual.periods_per_year,
            "annualization": annual.settings(),
            "execution": spec.execution.settings(),
            "start": start_ns,
            "end": end_ns,
            "warmup": lookback,
            "batch_size": batch_size,
            "workers": workers,
            "on_bad_bars": on_bad_bars,
            "metrics_every": metrics_every,
        }
    )
    result.dropped_bars = control.dropped
    return result


_ROW_COLUMNS = ("ts", "symbol", "weight", "return", "equity", "close")


def collect_result(
    s: Strategy, universe: list[str], outputs: list[StrategyOutput]
) -> BacktestResult:
    """Assemble a :class:`BacktestResult` from the flow's outputs for one strategy.

    >>> from connectors.data.memory import aligned_batches
    >>> from connectors.data.synthetic import generate_bars
    >>> class S(Strategy):
    ...     def signal(self, bars):
    ...         return 1.0
    >>> bars = {"A": generate_bars(30)}
    >>> outs = run_dataflow([to_spec(S(), ["A"], None)], lambda: aligned_batches(bars, 7))
    >>> collect_result(S(), ["A"], outs).bars.num_rows
    30
    """
    batches = [o.batch for o in outputs if o.batch is not None]
    history = [
        (o.n_bars, o.as_of, o.metrics, o.returns_since if o.returns_since is not None
         else np.empty(0))
        for o in outputs if o.metrics is not None
    ]
    if not batches or not history:
        raise BacktestError(f"{s.name}: no bars were processed")
    symbols = batches[0].symbols
    # each batch's rows are ordered by time then symbol, and batches follow in time; the
    # table's columns are the batches' arrays as chunks (no copy)
    # batch by batch, so each batch's matrices are freed once its row columns are built
    # (dataflows.portfolio_rows.SymbolRows builds them when first read)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in _ROW_COLUMNS}
    for b in batches:
        for k in _ROW_COLUMNS:
            rows[k].append(b.symbol_rows[k])
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
            # each row's bar close (the tear sheet's benchmark): the portfolio's own
            "close": pa.chunked_array(rows["close"], pa.float64()),
        }
    )
    return BacktestResult(
        strategy=s.name,
        params=_instance_params(s),
        symbols=universe,
        interval=s.interval,
        bars=table,
        metrics=history[-1][2],
        history=history,
        series={name: [getattr(b, name) for b in batches] for name in SERIES},
    )
