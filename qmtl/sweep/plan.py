"""A sweep's plan: its variants as engine specs, the bars they read, and running them in
this process (alone, with threads, or as one member of a Bytewax cluster).

>>> from qmtl import Strategy
>>> class S(Strategy):
...     symbols = ["A"]
...     n: int = 2
...     def signal(self, bars):
...         return bars.close > bars.close.sma(self.n)
>>> plan = plan_variants([S(n=2), S(n=5)], [{"n": 2}, {"n": 5}], None, None, None, None,
...                      100, None, "raise", 1000)
>>> plan.lookback(plan.specs())
4
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.data.seamless import SeamlessDataProvider
from dataflows.compiler import OnBad, StrategySpec, spec_lookback
from dataflows.control import RunControl
from dataflows.sweep_flow import SweepStats, VariantRun, run_sweep_flow
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError
from qmtl.core.times import time_bound
from qmtl.pages import small_pages
from qmtl.result import ParamValue
from qmtl.runner import to_spec
from qmtl.sources import lookback_start, resolve_source
from qmtl.strategy import Strategy, StrategyCodeError
from qmtl.sweep.result import SweepError
from qmtl.usercode import code_frame, graph_code


@dataclass
class Plan:
    """Everything needed to run a set of variants, in this process or in a cluster's."""

    strategies: list[Strategy]
    params: list[dict[str, ParamValue]]
    universe: list[str]
    interval: str
    start: int | None
    end: int | None
    batch_size: int
    periods_per_year: float | None
    on_bad_bars: OnBad
    metrics_every: int
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        width = len(str(len(self.strategies) - 1))
        self.keys = [f"v{i:0{width}d}" for i in range(len(self.strategies))]

    def specs(self) -> list[StrategySpec]:
        """One engine spec per variant (its own universe; keys ``v0``, ``v1``...)."""
        return [to_spec(s, list(s.symbols) or self.universe, self.periods_per_year, key)
                for s, key in zip(self.strategies, self.keys, strict=True)]

    def lookback(self, specs: list[StrategySpec]) -> int:
        """The largest look-back of the variants, in bars of their interval (a coarser
        series' warm-up counted as a run alone counts it): each warms up on the same bars."""
        return max(s.warmup if s.warmup is not None else spec_lookback(spec)
                   for s, spec in zip(self.strategies, specs, strict=True))

    def items(self, source: SeamlessDataProvider | Mapping[str, Batch],
              specs: list[StrategySpec]) -> tuple[Any, int, int | None]:
        """The bar items' factory, their count and where the signals start (None: at once)."""
        make_items, total = resolve_source(source, self.universe, self.interval, self.start,
                                           self.end, self.batch_size)
        lookback = self.lookback(specs)
        if self.start is None or lookback == 0:
            return make_items, total, None
        read_from = lookback_start(source, self.universe, self.interval, self.start, lookback)
        if read_from == self.start:
            return make_items, total, None
        make_items, total = resolve_source(source, self.universe, self.interval, read_from,
                                           self.end, self.batch_size)
        return make_items, total, self.start


def ns(value: str | int | None, what: str) -> int | None:
    """``value`` (ISO text or ns) as ns; a :class:`SweepError` naming ``what`` if malformed.

    >>> ns("2024-01-02", "start")
    1704153600000000000
    """
    return time_bound(value, what, SweepError)


def plan_variants(
    strategies: Sequence[Strategy], params: list[dict[str, ParamValue]],
    symbols: Sequence[str] | None, start: str | int | None, end: str | int | None,
    cost_bps: float | None, batch_size: int, periods_per_year: float | None,
    on_bad_bars: OnBad, metrics_every: int,
) -> Plan:
    """Check the variants can share one flow (one interval) and plan their run.

    >>> class S(Strategy):
    ...     symbols = ["A"]
    >>> plan_variants([S(), S()], [{}, {}], None, None, None, None, 100, None, "raise",
    ...               1000).keys
    ['v0', 'v1']
    """
    if not strategies:
        raise SweepError("the sweep has no variants")
    intervals = sorted({s.interval for s in strategies})
    if len(intervals) > 1:
        raise SweepError(f"strategies swept together must share one interval, got "
                         f"{', '.join(intervals)}")
    if batch_size < 1:
        raise SweepError(f"batch size must be >= 1, got {batch_size}")
    if cost_bps is not None:
        if not (math.isfinite(cost_bps) and cost_bps >= 0):
            raise SweepError(f"cost_bps must be a finite number >= 0, got {cost_bps}")
        for s in strategies:
            s.cost_bps = float(cost_bps)
    if symbols:
        for s in strategies:
            s.symbols = list(symbols)  # type: ignore[misc]
    universe = sorted({sym for s in strategies for sym in s.symbols})
    if not universe:
        raise SweepError(f"{strategies[0].name} has no symbols: set `symbols = [...]` on the "
                         "class or pass --symbols")
    start_ns, end_ns = ns(start, "start"), ns(end, "end")
    if start_ns is not None and end_ns is not None and start_ns > end_ns:
        raise SweepError(f"empty date range: start {start} is after end {end}")
    return Plan(list(strategies), params, universe, intervals[0], start_ns, end_ns,
                batch_size, periods_per_year, on_bad_bars, metrics_every)


def run_plan(
    plan: Plan, source: SeamlessDataProvider | Mapping[str, Batch], *, workers: int = 1,
    progress: Callable[[int], None] | None = None, on_start: Callable[[int], None] | None = None,
    addresses: list[str] | None = None, process_id: int = 0,
) -> tuple[list[VariantRun] | None, SweepStats]:
    """Run ``plan`` over ``source`` in this process (a member of a cluster with
    ``addresses``); the variants' runs (None where another process gathered them)."""
    specs = plan.specs()
    make_items, total, signals_from = plan.items(source, specs)
    if on_start is not None:
        on_start(total * len(specs))
    user_code = graph_code([s.weight for s in specs])
    try:
        with small_pages():  # as a backtest: fresh large arrays without huge-page compaction
            return run_sweep_flow(specs, make_items, workers=workers, addresses=addresses,
                                  process_id=process_id, on_bad=plan.on_bad_bars,
                                  metrics_every=plan.metrics_every,
                                  control=RunControl(progress), signals_from=signals_from)
    except QmtlError:
        raise
    except Exception as exc:  # a strategy's Operator or apply function failed: say where
        frame = code_frame(exc, user_code)
        if frame is None:
            raise
        names = ", ".join(sorted({s.name for s in plan.strategies}))
        raise StrategyCodeError.wrap(f"{names} failed during the sweep", exc, frame) from exc
