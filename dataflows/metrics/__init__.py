"""Streaming, mergeable performance metrics over per-period simple returns.

One small class per metric, in the style of ``river.stats``: ``update(batch)`` consumes a
batch of returns (any length), ``get()`` gives the current value, and ``a += b`` merges a
metric of the periods that *follow* ``a``'s. Updating with any split of a series, or merging
metrics of consecutive pieces, gives the one-batch value (to ~1e-15 relative). Memory is
O(1) per metric (max drawdown keeps a short list, see :class:`MaxDrawdown`).

Undefined values (too few periods, zero variance) are NaN; a profit factor with gains and no
losses is +inf. Annualization takes ``periods_per_year`` (252 for daily bars, calendar time
otherwise: :func:`qmtl.core.intervals.periods_per_year`).

- :mod:`~dataflows.metrics.base`: the :class:`Metric` contract, :class:`Periods` (a batch
  and what several metrics derive from it, computed once), :class:`Moments`;
- :mod:`~dataflows.metrics.returns`: count, total return, CAGR, linearity;
- :mod:`~dataflows.metrics.risk`: volatility, Sharpe, Sortino, max drawdown, Calmar;
- :mod:`~dataflows.metrics.trades`: win rate, profit factor, exposure, turnover;
- :mod:`~dataflows.metrics.metric_set`: :class:`MetricSet`, all of them under result names.

>>> import numpy as np
>>> r = np.array([0.01, -0.02, 0.015, 0.005])
>>> m = MetricSet(periods_per_year=252)
>>> _ = m.update(r[:1]).update(r[1:])
>>> round(m.get()["total_return"], 6), m.get()["n_bars"]
(0.00967, 4.0)
>>> round(MaxDrawdown().update(r).get(), 4)
0.02
"""

from dataflows.metrics.base import Metric, Moments, Periods, finite
from dataflows.metrics.metric_set import MetricSet
from dataflows.metrics.returns import Cagr, Count, Linearity, TotalReturn
from dataflows.metrics.risk import (
    Calmar,
    MaxDrawdown,
    MomentMetric,
    Sharpe,
    Sortino,
    Volatility,
)
from dataflows.metrics.trades import Exposure, ProfitFactor, Turnover, WinRate

# a live run's recovery snapshot pickles its MetricSet; those written before the metrics were
# a package name their moments class by its old private name (the other classes keep theirs)
_Moments = Moments

__all__ = [
    "Cagr",
    "Calmar",
    "Count",
    "Exposure",
    "Linearity",
    "MaxDrawdown",
    "Metric",
    "MetricSet",
    "MomentMetric",
    "Moments",
    "Periods",
    "ProfitFactor",
    "Sharpe",
    "Sortino",
    "TotalReturn",
    "Turnover",
    "Volatility",
    "WinRate",
    "finite",
]
