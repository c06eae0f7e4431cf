"""Cross-sectional kernels: functions of a panel, one row per bar time, one column per symbol.

Each function takes a float64 panel ``x`` of shape ``(times, symbols)`` (symbols in a fixed
order, sorted by name) where NaN marks a symbol that has no value at that time (no bar, warm-up
or NaN), and returns a panel of the same shape. Every row is computed on its own, over the
finite values of that row only (the row's *cross-section*); a cell that was not finite stays
NaN. Nothing depends on other rows, so a panel split into any runs of rows gives the same
values bit for bit: the cross-sectional stage is batch-invariant by construction.

>>> x = np.array([[3.0, 1.0, np.nan, 2.0]])
>>> cs_rank(x).tolist()
[[1.0, 0.0, nan, 0.5]]
>>> cs_demean(x).tolist()
[[1.0, -1.0, nan, 0.0]]
>>> cs_top(x, k=1).tolist()
[[1.0, 0.0, nan, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PanelFn = Callable[..., np.ndarray]


def _count_sum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite mask, count and sum of each row's finite values (as columns)."""
    ok = np.isfinite(x)
    n = ok.sum(axis=1, keepdims=True)
    every = n.min(initial=x.shape[1]) == x.shape[1] and x.flags.c_contiguous
    s = (x if every else np.where(ok, x, 0.0)).sum(axis=1, keepdims=True)
    return ok, n, s


def cs_rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank in each row: ties get their average rank, scaled to [0, 1] as
    ``(rank - 1) / (n - 1)`` over the row's ``n`` finite values; 0.5 when ``n = 1``.

    >>> cs_rank(np.array([[5.0, 5.0, 1.0], [np.nan, 2.0, np.nan]])).tolist()
    [[0.75, 0.75, 0.0], [nan, 0.5, nan]]
    """
    x = np.asarray(x, dtype=np.float64)
    cols = x.shape[1]
    if x.size == 0 or not 2 <= cols <= _PACK_COLS:
        return _rank_exact(x)
    out, exact = _rank_packed(x)
    if exact.any():  # rows with ties (or values too close to pack): the exact path
        out[exact] = _rank_exact(x[exact])
    return out


_SIGN = np.uint64(1 << 63)
_PACK_COLS = 1 << 16
"""Rows up to this wide are ranked by one sort of packed keys (:func:`_rank_packed`)."""


def _rank_packed(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile ranks of the rows without ties, by one ``np.sort`` of 64-bit keys: each
    value mapped to an unsigned integer in the same order, its low bits replaced by its
    column, so the sorted keys carry the order (no ``argsort``). Rows where two finite
    values agree in the kept bits (ties, or values within ~1e-13 of each other) are
    flagged for :func:`_rank_exact`; on the others the ranks are :func:`_rank_exact`'s,
    computed with the same float operations.

    >>> out, exact = _rank_packed(np.array([[3.0, 1.0, 2.0], [1.0, 1.0, np.nan]]))
    >>> out[0].tolist(), exact.tolist()
    ([1.0, 0.0, 0.5], [False, True])
    """
    rows, cols = x.shape
    bits = (cols - 1).bit_length()
    low = np.uint64((1 << bits) - 1)
    ok = np.isfinite(x)
    every = bool(ok.all())
    key = np.add(x, 0.0).view(np.uint64)  # + 0.0: -0.0 is 0.0 (equal values, one key)
    # negative floats: all bits flipped; others: the sign bit set (unsigned order = value order)
    flip = key >> np.uint64(63)
    np.subtract(np.uint64(0), flip, out=flip)
    flip |= _SIGN
    key ^= flip
    del flip
    if not every:
        key[~ok] = ~np.uint64(0)  # every non-finite cell sorts last
    key &= ~low
    key |= np.arange(cols, dtype=np.uint64)
    key.sort(axis=1)
    order = np.bitwise_and(key, low).view(np.int64)  # < 2**16: the same integers
    key >>= np.uint64(bits)
    tie = key[:, 1:] == key[:, :-1]
    if not every:  # non-finite cells are never ranked: they tie with nothing
        tie &= key[:, 1:] != (~np.uint64(0) >> np.uint64(bits))
    exact = tie.any(axis=1)
    rank = np.arange(cols, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        if every:
            pct = np.broadcast_to(rank / (float(cols) - 1.0), (rows, cols))
        else:
            n = ok.sum(axis=1).astype(np.float64)
            pct = rank / (n - 1.0)[:, None]
            single = n == 1.0
            if single.any():
                pct[single] = 0.5
    out = np.empty(x.shape)
    order += np.arange(0, rows * cols, cols)[:, None]  # flat positions
    out.reshape(-1)[order] = pct
    if not every:
        out[~ok] = np.nan
    return out, exact


def _rank_exact(x: np.ndarray) -> np.ndarray:
    """:func:`cs_rank` by ``argsort``, ties averaged (any row width).

    >>> _rank_exact(np.array([[5.0, 5.0, 1.0]])).tolist()
    [[0.75, 0.75, 0.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    rows, cols = x.shape
    out = np.full(x.shape, np.nan)
    if x.size == 0:
        return out
    ok = np.isfinite(x)
    every = bool(ok.all())
    work = x if every else np.where(ok, x, np.inf)  # non-finite cells sort last
    order = np.argsort(work, axis=1)  # any order within ties: they get one average rank
    srt = np.take_along_axis(work, order, axis=1)
    tie = srt[:, 1:] == srt[:, :-1]
    if not every:
        tie &= np.isfinite(srt[:, 1:])
    n = np.full(rows, float(cols)) if every else ok.sum(axis=1).astype(np.float64)
    rank = np.broadcast_to(np.arange(cols, dtype=np.float64), (rows, cols))
    tied = np.flatnonzero(tie.any(axis=1))
    if tied.size:  # average the 0-based ranks of each run of equal values
        rank = rank.copy()
        pos = np.arange(cols)
        new = np.ones((tied.size, cols), dtype=bool)
        new[:, 1:] = ~tie[tied]
        start = np.where(new, pos, 0)
        np.maximum.accumulate(start, axis=1, out=start)
        last = np.ones((tied.size, cols), dtype=bool)
        last[:, :-1] = new[:, 1:]
        end = np.where(last, pos, cols - 1)
        end = np.minimum.accumulate(end[:, ::-1], axis=1)[:, ::-1]
        rank[tied] = (start + end) * 0.5
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = rank / (n - 1.0)[:, None]
    single = n == 1.0
    if single.any():
        pct[single] = 0.5
    np.put_along_axis(out, order, pct, axis=1)
    if not every:
        out[~ok] = np.nan
    return out


def cs_demean(x: np.ndarray) -> np.ndarray:
    """Each finite value minus its row's mean.

    >>> cs_demean(np.array([[1.0, 2.0, 6.0]])).tolist()
    [[-2.0, -1.0, 3.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    ok, n, s = _count_sum(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x - s / n
    if not ok.all():
        out[~ok] = np.nan
    return out


def cs_zscore(x: np.ndarray) -> np.ndarray:
    """``(x - mean) / std`` over each row's finite values, population std (``ddof=0``);
    NaN where the std is 0 (every value equal, or one value).

    >>> cs_zscore(np.array([[1.0, 3.0]])).tolist()
    [[-1.0, 1.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    d = cs_demean(x)
    ok = np.isfinite(d)
    n = ok.sum(axis=1, keepdims=True)
    sq = np.where(ok, d * d, 0.0).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        std = np.sqrt(sq / n)
        out = np.where(std > 0, d / std, np.nan)
    out[~ok] = np.nan
    return out


def cs_scale(x: np.ndarray, gross: float = 1.0) -> np.ndarray:
    """``x / sum|x| * gross`` in each row; 0.0 where the row's ``sum|x|`` is 0.

    >>> cs_scale(np.array([[1.0, -3.0, np.nan]]), gross=2.0).tolist()
    [[0.5, -1.5, nan]]
    """
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    every = bool(ok.all())
    size = np.abs(x)
    total = (size if every else np.where(ok, size, 0.0)).sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x / total
        if gross != 1.0:  # times 1.0 changes no bit
            out *= gross
    zero = total[:, 0] <= 0
    if zero.any():
        out[zero] = 0.0
    if not every:
        out[~ok] = np.nan
    return out


def cs_neutralize(x: np.ndarray, codes: Sequence[int]) -> np.ndarray:
    """Demean within groups: ``codes[j]`` is the group number of column ``j``.

    >>> cs_neutralize(np.array([[1.0, 3.0, 10.0, 20.0]]), [0, 0, 1, 1]).tolist()
    [[-1.0, 1.0, -5.0, 5.0]]
    """
    x = np.asarray(x, dtype=np.float64)
    codes_a = np.asarray(codes, dtype=np.int64)
    out = np.full(x.shape, np.nan)
    for g in np.unique(codes_a):
        cols = np.flatnonzero(codes_a == g)
        out[:, cols] = cs_demean(x[:, cols])
    return out


def _pick(x: np.ndarray, k: int, highest: bool) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    key = np.where(ok, -x if highest else x, np.inf)
    order = np.argsort(key, axis=1, kind="stable")  # stable: ties in column (symbol) order
    chosen = np.zeros(x.shape)
    np.put_along_axis(chosen, order[:, :k], 1.0, axis=1)
    chosen[~ok] = np.nan
    return chosen


def cs_top(x: np.ndarray, k: int) -> np.ndarray:
    """1.0 for the ``k`` highest finite values of each row, else 0.0; ties go to the
    earlier column (the symbol first by name).

    >>> cs_top(np.array([[2.0, 2.0, 1.0]]), k=1).tolist()
    [[1.0, 0.0, 0.0]]
    """
    return _pick(x, k, True)


def cs_bottom(x: np.ndarray, k: int) -> np.ndarray:
    """1.0 for the ``k`` lowest finite values of each row, else 0.0 (ties as
    :func:`cs_top`).

    >>> cs_bottom(np.array([[2.0, 1.0, 1.0]]), k=1).tolist()
    [[0.0, 1.0, 0.0]]
    """
    return _pick(x, k, False)


PANEL_OPS: dict[str, PanelFn] = {
    "cs_rank": cs_rank,
    "cs_demean": cs_demean,
    "cs_zscore": cs_zscore,
    "cs_scale": cs_scale,
    "cs_neutralize": cs_neutralize,
    "cs_top": cs_top,
    "cs_bottom": cs_bottom,
}
"""Cross-sectional operator name -> panel function."""


def panel_call(
    op: str, x: np.ndarray, params: dict[str, Any], symbols: Sequence[str]
) -> np.ndarray:
    """Evaluate cross-sectional operator ``op`` on panel ``x`` whose columns are ``symbols``
    (``groups`` of ``cs_neutralize`` are mapped to group numbers here).

    >>> panel_call("cs_scale", np.array([[1.0, 1.0]]), {"gross": 1.0}, ["A", "B"]).tolist()
    [[0.5, 0.5]]
    >>> panel_call("cs_neutralize", np.ones((1, 2)), {"groups": {"A": "x"}}, ["A", "B"])
    Traceback (most recent call last):
    ...
    ValueError: cs.neutralize: symbol 'B' has no group in the mapping
    """
    if op == "cs_neutralize":
        groups = dict(params["groups"])
        missing = [s for s in symbols if s not in groups]
        if missing:
            raise ValueError(f"cs.neutralize: symbol {missing[0]!r} has no group in the mapping")
        names = sorted({str(groups[s]) for s in symbols})
        codes = [names.index(str(groups[s])) for s in symbols]
        return cs_neutralize(x, codes)
    if op in ("cs_top", "cs_bottom"):
        return PANEL_OPS[op](x, int(params["k"]))
    if op == "cs_scale":
        return cs_scale(x, float(params["gross"]))
    return PANEL_OPS[op](x)
