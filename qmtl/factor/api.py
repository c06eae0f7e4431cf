"""``qmtl.factor(...)``: the factor analysis of alphas: per horizon IC and rank IC, their
decay, quantile returns, the top-minus-bottom spread, turnover, rank autocorrelation, IC by
group and by month (definitions: :mod:`qmtl.factor.stats`). Many alphas are evaluated in
one flow, sharing their nodes (:mod:`qmtl.factor.values`).

A strategy (a file's class, a spec) is analysed through its target weights: the rank IC,
the IC and the quantiles are the same for any per-bar positive affine map of the values
(``scale(demean(x))`` is one), so an alpha's weights and its raw values agree.

>>> from connectors.data.synthetic import generate_bars
>>> data = {s: generate_bars(80, seed=i) for i, s in enumerate("ABCDEF")}
>>> rep = factor("rank(-ts_delta(close, 3))", data, symbols=list("ABCDEF"), horizons=(1, 5))
>>> sorted(rep.stats.horizons), rep.stats.quantiles
([1, 5], 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qmtl.alpha.api import _check_groups, weights
from qmtl.alpha.functions import Groups, group_levels, to_expr
from qmtl.alpha.syntax import AlphaSyntaxError, parse
from qmtl.core.expr import Expr
from qmtl.factor.stats import FactorStats, Summary, factor_stats, monthly
from qmtl.factor.values import evaluate
from qmtl.sources import BacktestError, DataSource
from qmtl.strategy import Strategy

__all__ = ["FactorReport", "factor", "factors"]


@dataclass
class FactorReport:
    """One alpha's factor analysis: its name, text (None for a strategy without one), the
    statistics and the monthly rank IC of the first horizon."""

    name: str
    text: str | None
    stats: FactorStats
    monthly_ic: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The numbers as JSON data (NaN as null).

        >>> from qmtl.factor.stats import FactorStats
        >>> FactorReport("a", "close", FactorStats(np.arange(0), {}, 5, {}, np.empty(0), 0),
        ...              {}).to_json()["horizons"]
        {}
        """
        def num(x: float) -> float | None:
            return float(x) if x is not None and math.isfinite(x) else None

        def summ(s: Summary) -> dict[str, Any]:
            return {"mean": num(s.mean), "std": num(s.std), "icir": num(s.icir),
                    "t_stat": num(s.t_stat), "n": s.n}

        st = self.stats
        return {
            "name": self.name, "alpha": self.text, "observations": st.observations,
            "quantiles": st.quantiles,
            "horizons": {str(h): {
                "ic": summ(hs.ic_summary), "rank_ic": summ(hs.rank_ic_summary),
                "quantile_mean_return": [num(v) for v in hs.quantile_mean],
                "spread_mean": num(float(np.nanmean(hs.spread)) if np.isfinite(
                    hs.spread).any() else math.nan),
                "cumulative_spread": num(float(hs.cumulative_spread[-1])
                                         if len(hs.cumulative_spread) else math.nan),
                "rank_ic_by_group": {g: num(v) for g, v in hs.group_ic.items()},
            } for h, hs in st.horizons.items()},
            "ic_decay": {str(h): num(v) for h, v in st.decay().items()},
            "turnover_mean": {str(q): num(float(np.nanmean(t)) if np.isfinite(t).any()
                                          else math.nan) for q, t in st.turnover.items()},
            "rank_autocorrelation_mean": num(float(np.nanmean(st.rank_autocorr))
                                             if np.isfinite(st.rank_autocorr).any()
                                             else math.nan),
            "monthly_rank_ic": {m: num(v) for m, v in self.monthly_ic.items()},
        }


def _item(item: str | Strategy | Expr, groups: Groups | None) -> tuple[str, str | None, Expr]:
    if isinstance(item, str):  # named as qmtl.alpha(text, groups=groups) names its strategy
        value = to_expr(parse(item), item, groups)
        flat, _ = group_levels(groups)
        w = weights(value, "group" if flat else "market", flat)
        return f"alpha-{w.id[:10]}", item, value
    if isinstance(item, Strategy):
        return item.name, getattr(item, "alpha", None), item.target()
    if isinstance(item, Expr):
        return f"expr-{item.id[:10]}", None, item
    raise TypeError(f"a factor is alpha text, a Strategy or an Expr, got {type(item).__name__}")


def factors(
    alphas: Sequence[str | Strategy | Expr],
    data: DataSource = None,
    *,
    symbols: Sequence[str] | None = None,
    interval: str = "1d",
    horizons: Sequence[int] = (1, 5, 10),
    quantiles: int = 5,
    groups: Groups | None = None,
    start: int | None = None,
    end: int | None = None,
) -> tuple[list[FactorReport], float]:
    """The analysis of every alpha (text, strategy or expression) in one flow, and the
    flow's dedup factor (nodes each alpha would evaluate alone / nodes evaluated). Texts
    read ``groups`` (a symbol -> group map or levels: ``indneutralize``) and IC by group
    uses its first level. An error in a text names its 1-based position.

    >>> factors(["close", "clse"], {}, symbols=["A"])
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: alpha #2: unknown field 'clse' at column 1: did you \
mean 'close'?
      clse
      ^
    """
    if isinstance(alphas, (str, Strategy, Expr)):
        raise TypeError("factors takes a list of alphas")
    universe = list(symbols) if symbols else sorted(
        {s for a in alphas if isinstance(a, Strategy) for s in a.symbols})
    if not universe:
        raise BacktestError("no symbols: give symbols=[...] (a factor is read across them)")
    checked = _check_groups(groups, universe)
    named: dict[str, tuple[str, str | None, Expr]] = {}
    for i, a in enumerate(alphas, 1):
        try:
            name, text, expr = _item(a, checked)
        except AlphaSyntaxError as exc:
            raise AlphaSyntaxError(f"alpha #{i}: {exc.reason}", exc.text, exc.column,
                                   exc.hint) from None
        name = name or f"alpha-{expr.id[:10]}"
        while name in named:
            name = f"{name}#{i}"
        named[name] = (name, text, expr)
    values = evaluate({k: v[2] for k, v in named.items()}, data, universe, interval,
                      start=start, end=end)
    flat, _ = group_levels(checked)
    cols = {s: j for j, s in enumerate(values.symbols)}
    by_group: dict[str, list[int]] = {}
    for sym, g in (flat or {}).items():
        if sym in cols:
            by_group.setdefault(g, []).append(cols[sym])
    reports = []
    first = min(horizons) if horizons else 1
    for key, (name, text, _) in named.items():
        st = factor_stats(values.panels[key], values.close, horizons=horizons,
                          quantiles=quantiles, ts=values.ts, groups=by_group or None)
        ric = st.horizons[first].rank_ic if st.horizons else np.empty(0)
        reports.append(FactorReport(name, text, st, monthly(st.ts, ric)))
    return reports, values.dedup


def factor(alpha: str | Strategy | Expr, data: DataSource = None, **options: Any
           ) -> FactorReport:
    """The analysis of one alpha (see :func:`factors` for the options).

    >>> factor("close", {}, symbols=[])
    Traceback (most recent call last):
    ...
    qmtl.sources.BacktestError: no symbols: give symbols=[...] (a factor is read across them)
    """
    return factors([alpha], data, **options)[0][0]


