"""The world re-checks what it can of a MetricsUpdate before it believes it (pure: no I/O).

- ``returns`` cannot hold more returns than ``n_bars`` bars, and a ``metrics.n_bars`` the
  update claims must equal its ``n_bars``.
- When the update carries the returns of all its bars (``len(returns) == n_bars``, at least
  2: a run's first update, or a whole history sent at once), the world recomputes its
  metrics from them (:class:`dataflows.metrics.MetricSet`, the backtest's own code) and
  every metric the update claims that returns determine (``total_return``, ``cagr``,
  ``volatility``, ``sharpe``, ``sortino``, ``max_drawdown``, ``calmar``, ``win_rate``,
  ``profit_factor``, ``linearity``) must agree within ``ATOL + RTOL * |recomputed|``.
  ``turnover`` and ``exposure`` need the positions and are not checked.
- Annualization: the periods per year a client used is read from its claimed
  ``volatility`` (the one annualized metric that does not depend on the mean); it must lie
  within a factor of 2 of the annualization of the returns' own times (their bars a year,
  as a backtest counts them: ``world_api.domain.world_returns.annualization``). Without a
  claimed volatility (or with none to read, all returns equal), the returns' annualization
  is used, or any usual one (``STANDARD_PPY``) within that factor that makes the claims
  agree.

A disagreement is :class:`Inconsistent` (the service answers 422) naming the metric, the
claimed and the recomputed value and the difference.

>>> DAY = 86_400 * 10**9
>>> rs = [0.01, -0.02, 0.015, 0.005]
>>> pairs = [((i + 1) * DAY, r) for i, r in enumerate(rs)]
>>> honest = MetricSet(252).update(rs).finite()
>>> recheck(4, {"sharpe": honest["sharpe"], "n_bars": 4.0}, pairs)
>>> try:
...     recheck(4, {"sharpe": -3.0}, pairs)
... except Inconsistent as exc:
...     print(exc)
metrics.sharpe: claimed -3, its returns give 3.0724 (off by 6.0724; tolerance 0.0030734)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from dataflows.metrics import MetricSet
from qmtl.core.contracts import METRIC_NAMES, MetricsUpdate
from qmtl.core.intervals import INTERVALS, interval_seconds, periods_per_year
from world_api.domain.ids import normalize
from world_api.domain.world_returns import annualization

CHECKED: tuple[str, ...] = tuple(m for m in METRIC_NAMES if m not in ("turnover", "exposure"))
"""The metrics recomputed from an update's returns, in the order they are checked."""

RTOL = 1e-3
"""Relative tolerance of a claimed metric against the recomputed one."""

ATOL = 1e-6
"""Absolute tolerance (for metrics near 0)."""

MAX_ANNUALIZATION_RATIO = 2.0
"""How far the periods per year a claimed volatility implies may be from the returns'."""


class Inconsistent(ValueError):
    """An update whose claims disagree with its own data (422 at the service).

    >>> Inconsistent("metrics.n_bars: claimed 3 but n_bars is 4").args[0][:14]
    'metrics.n_bars'
    """


STANDARD_PPY: tuple[float, ...] = tuple(
    sorted(
        {periods_per_year(i) for i in INTERVALS}
        | {365 * 86400 / interval_seconds(i) for i in INTERVALS}
        | {365.25 * 86400 / interval_seconds(i) for i in INTERVALS}
    )
)
"""The usual annualizations (252 trading days, 365 and 365.25 calendar days, per bar
interval): an implied one this close to one of them is taken as it."""


def _snap(ppy: float) -> float:
    """``ppy`` as the standard annualization it rounds to (relative 1e-6), else itself.

    >>> _snap(365.0000001), _snap(300.0)
    (365.0, 300.0)
    """
    for std in STANDARD_PPY:
        if abs(ppy / std - 1.0) < 1e-6:
            return std
    return ppy


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _recheck(
    n_bars: int, metrics: Mapping[str, float], returns: Sequence[tuple[int, float]]
) -> None:
    n = len(returns)
    if n > n_bars:
        raise Inconsistent(
            f"returns: {n} returns for n_bars {n_bars} (an update cannot "
            "carry more returns than bars)"
        )
    if "n_bars" in metrics and metrics["n_bars"] != n_bars:
        raise Inconsistent(
            f"metrics.n_bars: claimed {_fmt(metrics['n_bars'])} but n_bars is {n_bars}"
        )
    claimed = [m for m in CHECKED if m in metrics]
    if n != n_bars or n < 2 or not claimed:
        return
    ts = np.fromiter((t for t, _ in returns), dtype=np.int64, count=n)
    r = np.fromiter((x for _, x in returns), dtype=np.float64, count=n)
    ppy = annualization(ts)
    got = MetricSet(ppy).update(r).finite()
    vol = metrics.get("volatility")
    if vol is not None and got["volatility"] > 0 and vol > 0:
        implied = ppy * (vol / got["volatility"]) ** 2
        if not 1 / MAX_ANNUALIZATION_RATIO <= implied / ppy <= MAX_ANNUALIZATION_RATIO:
            raise Inconsistent(
                f"metrics.volatility: claimed {_fmt(vol)}, its returns give "
                f"{_fmt(got['volatility'])} at {ppy:g} periods a year (the claim implies "
                f"{implied:.4g} periods a year, more than {MAX_ANNUALIZATION_RATIO:g}x off)"
            )
        implied = _snap(implied)
        candidates = [implied]
    else:  # no volatility to read it from: any usual annualization near the returns' own
        near = [p for p in STANDARD_PPY if p != ppy and _within(p, ppy)]
        candidates = [ppy, *sorted(near, key=lambda p: abs(math.log(p / ppy)))]
    first = None
    for i, p in enumerate(candidates):
        if i or p != ppy:
            got = MetricSet(p).update(r).finite()
        wrong = _mismatch(claimed, metrics, got)
        if wrong is None:
            return
        first = first or wrong
    raise Inconsistent(first)


def _within(p: float, ppy: float) -> bool:
    return 1 / MAX_ANNUALIZATION_RATIO <= p / ppy <= MAX_ANNUALIZATION_RATIO


def _mismatch(
    claimed: list[str], metrics: Mapping[str, float], got: Mapping[str, float]
) -> str | None:
    """The first claimed metric that disagrees with ``got`` (a message), or None."""
    for name in claimed:
        want, have = got[name], float(metrics[name])
        tol = ATOL + RTOL * abs(want)
        if abs(have - want) > tol:
            return (
                f"metrics.{name}: claimed {_fmt(have)}, its returns give {_fmt(want)} "
                f"(off by {_fmt(abs(have - want))}; tolerance {_fmt(tol)})"
            )
    return None


def recheck(
    n_bars: int, metrics: Mapping[str, float], returns: Sequence[tuple[int, float]]
) -> None:
    """Raise :class:`Inconsistent` when an update's ``n_bars``, ``metrics`` and timed
    ``returns`` disagree (see the module docstring); None when they agree or cannot be
    checked. Extreme returns may overflow a metric: it is compared as the update states it
    (``finite``: +-1e9), quietly.

    >>> try:
    ...     recheck(1, {}, [(1, 0.1), (2, 0.2)])
    ... except Inconsistent as exc:
    ...     print(str(exc)[:35])
    returns: 2 returns for n_bars 1 (an
    >>> recheck(10, {"sharpe": 9.0}, [(1, 0.1)]) is None    # not its whole history
    True
    """
    with np.errstate(all="ignore"):
        _recheck(n_bars, metrics, returns)


def vet(u: MetricsUpdate) -> MetricsUpdate:
    """``u`` with its strategy id in NFC (``world_api.domain.ids.normalize``), after
    :func:`recheck`; :class:`Inconsistent` when its claims disagree with its data.

    >>> u = MetricsUpdate(world="w", strategy_id="Cafe\\u0301", run_id="r", seq=1,
    ...                   mode="live", as_of=1, n_bars=1, metrics={})
    >>> vet(u).strategy_id == "Caf\\u00e9"
    True
    """
    recheck(u.n_bars, u.metrics, u.returns)
    sid = normalize(u.strategy_id)
    return u if sid == u.strategy_id else u.model_copy(update={"strategy_id": sid})
