"""Factor statistics of one alpha's values, pure numpy over panels (bar times x symbols).

The definitions are alphalens' (``alphalens-reloaded``) where it has the statistic:

- an *observation* is a (bar, symbol) with a factor value and a forward return at every
  horizon (alphalens' ``get_clean_factor_and_forward_returns`` drops the others; QMTL
  filters no outliers: alphalens' ``filter_zscore`` is off);
- the forward return over ``h`` bars is ``close[t + h] / close[t] - 1``;
- **rank IC** is the Spearman correlation, across the symbols of one bar, of the factor and
  the forward return (alphalens' IC); **IC** is the Pearson correlation (alphalens has none);
- a bar's **quantile** of a symbol is ``pd.qcut(factor, q, labels=False) + 1`` of that
  bar's observations;
- quantile mean returns pool every observation of the quantile (alphalens'
  ``mean_return_by_quantile(demeaned=False)``); the spread is, per bar, the top quantile's
  mean forward return minus the bottom's (alphalens' ``compute_mean_returns_spread`` halves
  it: the return of a long-short book of unit gross; QMTL's is the plain difference),
  cumulated over horizon 1 as ``prod(1 + s) - 1``;
- **turnover** of a quantile at a bar: the share of its symbols that were not in it at the
  previous bar with observations; **rank autocorrelation**: the Pearson correlation across
  symbols of the factor's cross-sectional ranks at a bar and at the previous bar.

>>> f = np.array([[1.0, 2.0, 3.0], [3.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 1.0]])
>>> close = np.array([[10.0, 10, 10], [11, 10, 9], [10, 11, 12], [11, 12, 13]])
>>> s = factor_stats(f, close, horizons=(1,), quantiles=3)
>>> s.horizons[1].rank_ic.round(3).tolist()
[-1.0, -0.5, -1.0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from dataflows.kernels.cross_section import cs_rank

__all__ = ["FactorStats", "HorizonStats", "Summary", "factor_stats", "forward_returns",
           "monthly", "row_corr", "summary"]


def forward_returns(close: np.ndarray, h: int) -> np.ndarray:
    """``close[t + h] / close[t] - 1`` per symbol (NaN for the last ``h`` bars).

    >>> forward_returns(np.array([[1.0], [2.0], [3.0]]), 1).ravel().tolist()
    [1.0, 0.5, nan]
    """
    out = np.full(close.shape, np.nan)
    if h < len(close):
        with np.errstate(divide="ignore", invalid="ignore"):
            out[:-h] = close[h:] / close[:-h] - 1.0
    return out


def row_corr(x: np.ndarray, y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``x`` and ``y`` over the cells ``ok``; NaN where a
    row has fewer than 2 cells or either side is constant.

    >>> row_corr(np.array([[1.0, 2, 3]]), np.array([[2.0, 4, 7]]), np.ones((1, 3), bool))
    array([0.99339927])
    """
    n = ok.sum(axis=1)
    xs, ys = np.where(ok, x, 0.0), np.where(ok, y, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = xs.sum(axis=1) / n, ys.sum(axis=1) / n
        dx, dy = np.where(ok, x - mx[:, None], 0.0), np.where(ok, y - my[:, None], 0.0)
        sxy, sxx, syy = (dx * dy).sum(axis=1), (dx * dx).sum(axis=1), (dy * dy).sum(axis=1)
        r = sxy / np.sqrt(sxx * syy)
    r[(n < 2) | (sxx == 0) | (syy == 0)] = np.nan
    return r


def _ranks(x: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return cs_rank(np.where(ok, x, np.nan))


@dataclass
class Summary:
    """Mean, sample std, ICIR (mean / std) and t-stat (``mean / std * sqrt(n)``) of a
    series, over its finite values.

    >>> summary(np.array([0.1, 0.3, np.nan])).n
    2
    """

    mean: float
    std: float
    icir: float
    t_stat: float
    n: int


def summary(x: np.ndarray) -> Summary:
    """The :class:`Summary` of ``x``.

    >>> s = summary(np.array([0.1, 0.2, 0.3]))
    >>> round(s.mean, 6), round(s.icir, 6), round(s.t_stat, 6)
    (0.2, 2.0, 3.464102)
    """
    v = x[np.isfinite(x)]
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    std = float(v.std(ddof=1)) if n > 1 else math.nan
    icir = mean / std if n > 1 and std > 0 else math.nan
    return Summary(mean, std, icir, icir * math.sqrt(n) if math.isfinite(icir) else math.nan,
                   n)


@dataclass
class HorizonStats:
    """The statistics of one horizon: per-bar IC and rank IC (NaN where undefined), their
    summaries, the pooled mean forward return of each quantile (1 = lowest), the per-bar
    top-minus-bottom spread and its cumulative return, and rank IC by group."""

    ic: np.ndarray
    rank_ic: np.ndarray
    ic_summary: Summary
    rank_ic_summary: Summary
    quantile_mean: list[float]
    spread: np.ndarray
    cumulative_spread: np.ndarray
    group_ic: dict[str, float] = field(default_factory=dict)


@dataclass
class FactorStats:
    """Everything :func:`factor_stats` computes, on the bars with observations (``ts``)."""

    ts: np.ndarray
    horizons: dict[int, HorizonStats]
    quantiles: int
    turnover: dict[int, np.ndarray]
    rank_autocorr: np.ndarray
    observations: int

    def decay(self, rank: bool = True) -> dict[int, float]:
        """Mean (rank) IC per horizon: how the signal decays with the horizon.

        >>> FactorStats(np.arange(0), {}, 5, {}, np.empty(0), 0).decay()
        {}
        """
        return {h: (s.rank_ic_summary if rank else s.ic_summary).mean
                for h, s in self.horizons.items()}


def quantile_labels(x: np.ndarray, ok: np.ndarray, q: int) -> np.ndarray:
    """``pd.qcut(row, q, labels=False) + 1`` of each row's ``ok`` cells (0 elsewhere):
    linear-interpolated quantile edges, right-closed bins, the lowest value in bin 1.

    >>> quantile_labels(np.array([[4.0, 1, 3, 2]]), np.ones((1, 4), bool), 2).tolist()
    [[2, 1, 2, 1]]
    """
    vals = np.where(ok, x, np.nan)
    out = np.zeros(x.shape, dtype=np.int64)
    rows = ok.any(axis=1)
    if not rows.any():
        return out
    edges = np.nanquantile(vals[rows], np.linspace(0, 1, q + 1)[1:-1], axis=1).T
    lab = 1 + (vals[rows][:, :, None] > edges[:, None, :]).sum(axis=2)
    out[rows] = np.where(ok[rows], lab, 0)
    return out


def factor_stats(
    factor: np.ndarray,
    close: np.ndarray,
    *,
    horizons: Sequence[int] = (1, 5, 10),
    quantiles: int = 5,
    ts: np.ndarray | None = None,
    groups: Mapping[str, Sequence[int]] | None = None,
) -> FactorStats:
    """The statistics of ``factor`` (bars x symbols) against ``close`` (see the module
    docstring); ``groups`` maps a group name to its symbols' column numbers (IC by group).
    """
    if factor.shape != close.shape:
        raise ValueError(f"factor and close differ in shape: {factor.shape}, {close.shape}")
    if not horizons or any(h < 1 for h in horizons):
        raise ValueError(f"horizons must be whole numbers >= 1, got {list(horizons)}")
    if quantiles < 2:
        raise ValueError(f"quantiles must be >= 2, got {quantiles}")
    fwd = {h: forward_returns(close, h) for h in sorted(set(horizons))}
    ok = np.isfinite(factor)
    for r in fwd.values():
        ok &= np.isfinite(r)
    keep = ok.any(axis=1)
    f, ok = factor[keep], ok[keep]
    fwd = {h: r[keep] for h, r in fwd.items()}
    stamps = (ts if ts is not None else np.arange(len(factor)))[keep]
    labels = quantile_labels(f, ok, quantiles)
    franks = _ranks(f, ok)
    out: dict[int, HorizonStats] = {}
    for h, r in fwd.items():
        ic = row_corr(f, r, ok)
        ric = row_corr(franks, _ranks(r, ok), ok)
        qmean = [float(r[labels == k].mean()) if (labels == k).any() else math.nan
                 for k in range(1, quantiles + 1)]
        with np.errstate(invalid="ignore", divide="ignore"):
            top, bot = labels == quantiles, labels == 1
            spread = (np.where(top, r, 0).sum(axis=1) / top.sum(axis=1)
                      - np.where(bot, r, 0).sum(axis=1) / bot.sum(axis=1))
        by_group = {}
        for name, cols in (groups or {}).items():
            c = list(cols)
            g_ok = ok[:, c]
            by_group[name] = float(np.nanmean(row_corr(_ranks(f[:, c], g_ok),
                                                       _ranks(r[:, c], g_ok), g_ok))) \
                if np.isfinite(row_corr(f[:, c], r[:, c], g_ok)).any() else math.nan
        out[h] = HorizonStats(ic, ric, summary(ic), summary(ric), qmean, spread,
                              np.cumprod(1.0 + np.nan_to_num(spread)) - 1.0, by_group)
    turnover = {}
    for k in (1, quantiles):
        member = labels == k
        with np.errstate(invalid="ignore", divide="ignore"):
            t = (member[1:] & ~member[:-1]).sum(axis=1) / member[1:].sum(axis=1)
        turnover[k] = np.concatenate([[np.nan], t])
    both = ok[1:] & ok[:-1]
    auto = np.concatenate([[np.nan], row_corr(franks[1:], franks[:-1], both)])
    return FactorStats(stamps, out, quantiles, turnover, auto, int(ok.sum()))


def monthly(ts: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """The mean of ``values`` per calendar month (UTC) of ``ts`` (ns), over finite values
    (alphalens' ``mean_information_coefficient(by_time="ME")``).

    >>> ts = np.array(["2024-01-05", "2024-01-20", "2024-02-01"], dtype="datetime64[ns]")
    >>> monthly(ts.astype(np.int64), np.array([0.1, 0.3, 0.5]))
    {'2024-01': 0.2, '2024-02': 0.5}
    """
    months = np.asarray(ts, dtype=np.int64).astype("datetime64[ns]").astype("datetime64[M]")
    out: dict[str, float] = {}
    for m in np.unique(months):
        v = values[(months == m) & np.isfinite(values)]
        out[str(m)] = float(v.mean()) if len(v) else math.nan
    return out
