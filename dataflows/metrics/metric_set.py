"""Every result metric of a strategy, under the names results use.

>>> m = MetricSet(252).update([0.01, -0.005], turnover=[1.0, 0.0], gross=[1.0, 1.0])
>>> list(m.get())[:4]
['total_return', 'cagr', 'volatility', 'sharpe']
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from dataflows.metrics.base import Metric, Periods, finite
from dataflows.metrics.returns import Cagr, Count, Linearity, TotalReturn
from dataflows.metrics.risk import MaxDrawdown, Sharpe, Sortino, Volatility, ratio
from dataflows.metrics.trades import Exposure, ProfitFactor, Turnover, WinRate


class MetricSet:
    """Every result metric of a strategy, under the names results use.

    >>> m = MetricSet(252).update([0.01, -0.005], turnover=[1.0, 0.0], gross=[1.0, 1.0])
    >>> m.get()["n_bars"], m.get()["exposure"]
    (2.0, 1.0)
    >>> m.finite()["calmar"] == m.get()["calmar"]
    True
    """

    def __init__(self, periods_per_year: float) -> None:
        ppy = float(periods_per_year)
        self.periods_per_year = ppy
        self.returns: dict[str, Metric] = {
            "total_return": TotalReturn(),
            "cagr": Cagr(ppy),
            "volatility": Volatility(ppy),
            "sharpe": Sharpe(ppy),
            "sortino": Sortino(ppy),
            "max_drawdown": MaxDrawdown(),
            "win_rate": WinRate(),
            "profit_factor": ProfitFactor(),
            "linearity": Linearity(),
        }
        self.turnover = Turnover(ppy)
        self.exposure = Exposure()
        self.count = Count()

    def annualize(self, periods_per_year: float) -> None:
        """Annualize from now on with ``periods_per_year`` (a run that measures them from
        its bars as they arrive; every annualized metric scales at :meth:`get` only).

        >>> m = MetricSet(252).update([0.01, -0.005, 0.02])
        >>> m.annualize(365.25)
        >>> m.get()["sharpe"] == MetricSet(365.25).update([0.01, -0.005, 0.02]).get()["sharpe"]
        True
        """
        ppy = float(periods_per_year)
        self.periods_per_year = ppy
        for name in ("cagr", "volatility", "sharpe", "sortino"):
            self.returns[name].ppy = ppy  # type: ignore[attr-defined]
        self.turnover.ppy = ppy

    def _equities(self) -> list[float]:
        """The carried equity of every metric that compounds the returns."""
        m = self.returns
        return [m["total_return"].equity, m["cagr"].equity,  # type: ignore[attr-defined]
                m["max_drawdown"].equity, m["linearity"].equity]  # type: ignore[attr-defined]

    def update(
        self,
        returns: Any,
        turnover: Any | None = None,
        gross: Any | None = None,
        equity: np.ndarray | None = None,
    ) -> Self:
        """Consume a batch of returns and, optionally, per-period turnover and gross.

        The equity path and the moments of the batch are computed once and shared by the
        metrics that need them (the same values each metric would compute on its own).
        ``equity``, the equity after each return as the portfolio compounds it from the same
        start (``prod(1 + r)``, left to right), saves computing that path again.

        >>> r = np.array([0.1, -0.1])
        >>> a = MetricSet(252).update(r, equity=np.cumprod(1 + r))
        >>> a.get() == MetricSet(252).update(r).get()
        True
        """
        start, *others = self._equities()
        shared = all(e == start for e in others)
        periods = Periods(returns, start, equity if shared else None)
        for metric in self.returns.values():
            metric.update_periods(periods)
        self.count.update_periods(periods)
        if turnover is not None:
            self.turnover.update(turnover)
        if gross is not None:
            self.exposure.update(gross)
        return self

    def __iadd__(self, other: MetricSet) -> Self:
        for name, metric in self.returns.items():
            metric += other.returns[name]
        self.turnover += other.turnover
        self.exposure += other.exposure
        self.count += other.count
        return self

    def get(self) -> dict[str, float]:
        """Metric name -> value, in result order (see :data:`qmtl.core.contracts.METRIC_NAMES`).

        >>> MetricSet(252).get()["turnover"]
        0.0
        """
        out = {name: metric.get() for name, metric in self.returns.items()}
        # calmar from the set's own cagr and drawdown (computed once)
        calmar = ratio(out["cagr"], out["max_drawdown"])
        out = {
            **{k: out[k] for k in list(out)[:6]},
            "calmar": calmar,
            **{k: out[k] for k in list(out)[6:]},
        }
        out["turnover"] = self.turnover.get() if self.turnover.n else 0.0
        out["exposure"] = self.exposure.get() if self.exposure.n else 0.0
        out["n_bars"] = self.count.get()
        return out

    def finite(self) -> dict[str, float]:
        """Like :meth:`get`, with NaN as 0.0 and +-inf as +-1e9, for wire formats (JSON,
        MetricsUpdate) that refuse non-finite numbers.

        >>> MetricSet(252).finite()["sharpe"]
        0.0
        """
        return {k: finite(v) for k, v in self.get().items()}
