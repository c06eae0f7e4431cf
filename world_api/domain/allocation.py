"""Capital allocation among a world's active strategies (pure functions over numpy).

Methods: ``equal``; ``inverse_vol`` (w ~ 1/vol); ``score`` (w ~ max(score, 0)); ``risk_parity``
(equal risk contribution on the covariance); ``hrp`` (Lopez de Prado's hierarchical risk
parity). Then :func:`cap_weights`: weights >= 0, each <= ``max_weight``, sum <= 1 (what cannot be
placed under the cap stays in cash).

>>> import numpy as np
>>> allocate("inverse_vol", vols=np.array([0.1, 0.2]), cov=None, scores=None).round(4).tolist()
[0.6667, 0.3333]
>>> cap_weights(np.array([0.7, 0.2, 0.1]), 0.4).round(4).tolist()
[0.4, 0.4, 0.2]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform


def _normalize(w: np.ndarray) -> np.ndarray:
    total = w.sum()
    return w / total if total > 0 else np.full(len(w), 1.0 / len(w))


def _usable_vols(vols: np.ndarray) -> np.ndarray:
    ok = np.isfinite(vols) & (vols > 0)
    if not ok.any():
        return np.ones(len(vols))
    return np.where(ok, vols, np.median(vols[ok]))


def risk_parity(cov: np.ndarray, tol: float = 1e-12, max_iter: int = 10_000) -> np.ndarray:
    """Equal-risk-contribution weights: ``w_i * (C w)_i`` equal for all i, sum 1.

    Cyclical coordinate descent on ``x_i (C x)_i = 1/n`` (each step solves a quadratic in
    ``x_i``), then normalized.

    >>> risk_parity(np.diag([0.04, 0.01])).round(6).tolist()   # diagonal: inverse vol
    [0.333333, 0.666667]
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    diag = np.diag(cov).copy()
    if not (np.all(np.isfinite(cov)) and np.all(diag > 0)):
        return np.full(n, 1.0 / n)
    x = 1.0 / np.sqrt(diag)
    budget = 1.0 / n
    for _ in range(max_iter):
        prev = x.copy()
        for i in range(n):
            others = cov[i] @ x - cov[i, i] * x[i]
            x[i] = (-others + np.sqrt(others * others + 4.0 * cov[i, i] * budget)) / (
                2.0 * cov[i, i]
            )
        if np.max(np.abs(x - prev)) <= tol * np.max(np.abs(x)):
            break
    return _normalize(x)


def hrp(cov: np.ndarray) -> np.ndarray:
    """Hierarchical risk parity: single-linkage clusters on the correlation distance
    ``sqrt((1 - rho) / 2)``, quasi-diagonal order, recursive bisection with inverse-variance
    cluster weights.

    >>> c = np.array([[0.04, 0.0], [0.0, 0.01]])
    >>> hrp(c).round(6).tolist()
    [0.2, 0.8]
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    sd = np.sqrt(np.diag(cov))
    corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
    dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, None))
    np.fill_diagonal(dist, 0.0)
    order = leaves_list(linkage(squareform(dist, checks=False), method="single"))
    w = np.ones(n)
    clusters = [list(order)]
    while clusters:
        split = []
        for c in clusters:
            if len(c) > 1:
                half = len(c) // 2
                split += [c[:half], c[half:]]
        clusters = []
        for left, right in zip(split[0::2], split[1::2], strict=True):
            var_l, var_r = _cluster_var(cov, left), _cluster_var(cov, right)
            alpha = 1.0 - var_l / (var_l + var_r)
            w[left] *= alpha
            w[right] *= 1.0 - alpha
            clusters += [left, right]
        clusters = [c for c in clusters if len(c) > 1]
    return _normalize(w)


def _cluster_var(cov: np.ndarray, idx: list[int]) -> float:
    sub = cov[np.ix_(idx, idx)]
    ivp = _normalize(1.0 / np.diag(sub))
    return float(ivp @ sub @ ivp)


def allocate(
    method: str,
    *,
    vols: np.ndarray | None = None,
    cov: np.ndarray | None = None,
    scores: np.ndarray | None = None,
    n: int | None = None,
) -> np.ndarray:
    """Raw weights (sum 1) by ``method`` for the strategies described by ``vols``, ``cov``
    (annualized or not: only ratios matter) and ``scores``.

    >>> allocate("score", scores=np.array([2.0, -1.0, 1.0])).round(4).tolist()
    [0.6667, 0.0, 0.3333]
    """
    size = n or next(len(a) for a in (vols, cov, scores) if a is not None)
    if size == 0:
        return np.zeros(0)
    if method == "equal":
        return np.full(size, 1.0 / size)
    if method == "inverse_vol":
        assert vols is not None
        return _normalize(1.0 / _usable_vols(np.asarray(vols, dtype=float)))
    if method == "score":
        assert scores is not None
        return _normalize(np.maximum(np.nan_to_num(np.asarray(scores, dtype=float)), 0.0))
    if method in ("risk_parity", "hrp"):
        assert cov is not None
        c = np.asarray(cov, dtype=float)
        if not np.all(np.isfinite(c)) or np.any(np.diag(c) <= 0):
            v = _usable_vols(np.sqrt(np.abs(np.diag(c))) if len(c) else np.ones(size))
            return _normalize(1.0 / v)
        return risk_parity(c) if method == "risk_parity" else hrp(c)
    raise ValueError(f"unknown allocation method {method!r}")


def cap_weights(w: np.ndarray, max_weight: float) -> np.ndarray:
    """Weights >= 0 summing to at most 1, each at most ``max_weight``; excess over the cap is
    given to uncapped names in proportion; if every name is capped the rest is cash.

    >>> cap_weights(np.array([0.5, 0.5]), 0.4).tolist()
    [0.4, 0.4]
    """
    w = _normalize(np.maximum(np.nan_to_num(np.asarray(w, dtype=float)), 0.0)) if len(w) else w
    capped = np.zeros(len(w), dtype=bool)
    for _ in range(len(w) + 1):
        over = (w > max_weight + 1e-15) & ~capped
        if not over.any():
            break
        capped |= over
        excess = float((w[capped] - max_weight).sum())
        w[capped] = max_weight
        free = ~capped & (w > 0)
        if not free.any() or excess <= 0:
            break
        w[free] += excess * w[free] / w[free].sum()
    return np.minimum(w, max_weight)


def allocate_chosen(
    alloc: Any,
    chosen: list[Any],
    scores: list[float],
    correlation: Callable[[str, str], float],
) -> tuple[dict[str, float], set[str]]:
    """The weights of the ``chosen`` strategies (``StrategyState``s, with their ``scores``)
    under the policy's ``alloc`` section, capped, and the ids whose weight the cap cut;
    ``correlation(a, b)`` of two ids (NaN: unknown), for the covariance methods.

    >>> from world_api.domain.policy import parse_policy
    >>> from world_api.domain.strategy_state import StrategyState
    >>> a, b = StrategyState("a"), StrategyState("b")
    >>> allocate_chosen(parse_policy("allocation: {max_weight: 0.6}").allocation, [a, b],
    ...                 [1.0, 0.0], lambda x, y: float("nan"))
    ({'a': 0.5, 'b': 0.5}, set())
    """
    if not chosen:
        return {}, set()
    vols = np.array([s.vol() for s in chosen])
    sc = np.array(scores, dtype=float)
    sc = np.where(np.isfinite(sc), sc, 0.0)
    cov = None
    if alloc.method in ("risk_parity", "hrp"):
        cov = np.diag(np.where(np.isfinite(vols), vols, 1.0) ** 2)
        for i in range(len(chosen)):
            for j in range(i + 1, len(chosen)):
                rho = correlation(chosen[i].sid, chosen[j].sid)
                if not math.isnan(rho):
                    cov[i, j] = cov[j, i] = rho * math.sqrt(cov[i, i] * cov[j, j])
    if alloc.method == "score":
        sc = sc - sc.min() + 1e-9 if len(sc) > 1 else np.ones(1)
    raw = allocate(alloc.method, vols=vols, cov=cov, scores=sc, n=len(chosen))
    capped = cap_weights(raw, alloc.max_weight)
    cut = {
        s.sid
        for s, w_raw, w in zip(chosen, raw, capped, strict=True)
        if w_raw > alloc.max_weight + 1e-12 and w >= alloc.max_weight - 1e-12
    }
    return {s.sid: float(w) for s, w in zip(chosen, capped, strict=True)}, cut
