"""What the engine compiles and what it emits, per strategy: :class:`StrategySpec` (key,
universe, weight expression, costs, execution) and :class:`StrategyOutput` (the portfolio
step's rows and metric snapshots). Plain data: no I/O.

>>> from qmtl.core.expr import lit
>>> StrategySpec("s", ["A"], lit(1.0), 0.0, 1.0, 252.0).key
's'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dataflows.execution import Execution
from dataflows.portfolio import Portfolio, PortfolioBatch
from qmtl.core.expr import Expr
from qmtl.core.intervals import Annualization


@dataclass(frozen=True)
class StrategySpec:
    """What the engine needs of one strategy: its key, universe, weight expression, costs.

    >>> from qmtl.core.expr import lit
    >>> StrategySpec("s", ["A"], lit(1.0), 0.0, 1.0, 252.0).symbols
    ['A']
    """

    key: str
    symbols: list[str]
    weight: Expr
    cost_bps: float
    max_gross: float
    periods_per_year: float
    max_net: float = math.inf
    """Cap on ``|sum_i w_i|`` (after the gross cap); weights are scaled down to it."""
    context: tuple[str, ...] = ()
    """Symbols read (``bars["SPY"]``) but not traded."""
    interval: str | None = None
    """The bars' interval (needed by ``bars.at(...)``)."""
    execution: Execution = field(default_factory=Execution)
    """The execution rule, slippage and sizing (:mod:`dataflows.execution`)."""
    measured: bool = False
    """Annualize on the bars themselves (:func:`qmtl.core.intervals.span_annualization` of
    the timeline so far, at every metrics snapshot; ``periods_per_year`` until there are two
    bars) rather than on ``periods_per_year``."""
    calendar: Any = None
    """The symbols' calendar (:class:`connectors.data.calendars.Calendar`) a measured
    annualization counts the expected bars of; None: the bars' own spacing."""

    def portfolio(self, prices: bool = False) -> Portfolio:
        """A fresh portfolio for this strategy.

        >>> from qmtl.core.expr import lit
        >>> StrategySpec("s", ["A"], lit(1.0), 0.0, 1.0, 252.0).portfolio().ex.rule
        'close'
        """
        return Portfolio(self.symbols, self.cost_bps, self.max_gross, prices, self.max_net,
                         self.execution)


@dataclass
class StrategyOutput:
    """One portfolio step's output for a strategy: its new rows (if any) and, every
    ``METRICS_EVERY`` bars and at the end, its metrics so far with the returns since the
    previous snapshot.

    >>> StrategyOutput("s", None, {"sharpe": 1.0}, 10, 99, seq=10).seq
    10
    """

    strategy: str
    batch: PortfolioBatch | None
    metrics: dict[str, float] | None
    n_bars: int
    as_of: int
    returns_since: np.ndarray | None = None
    seq: int = 0
    """The MetricsUpdate seq of a metrics snapshot: ``n_bars`` at the snapshot. It depends on
    the bars only, not on how they were batched, so an update a restarted run sends again
    has the key the world has seen (and ``returns_since`` ends at the same bar)."""
    returns_ts: np.ndarray | None = None
    """The close time of the bar of each of ``returns_since`` (int64 ns UTC)."""
    annualization: Annualization | None = None
    """How the metrics of a snapshot were annualized."""
