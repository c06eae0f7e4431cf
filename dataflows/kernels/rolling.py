"""Window kernels: shift, rolling sums and means, variance, min, max, WMA and a Python
function over each window.

Each carries what it needs (a tail of inputs, running sums) so that its output is
bit-identical however the stream is split into batches:

- running sums use ``np.add.accumulate`` from the carried total (strictly sequential),
  anchored at the first finite input to keep magnitudes (and rounding) small;
- windowed statistics that need more than a sum loop over the window offsets in a fixed
  order, each step one vectorized operation over the batch.

Windows follow pandas' ``min_periods=n``: NaN until ``n`` values are seen and whenever the
window holds a NaN.

>>> k = make_kernel("rolling_mean", {"n": 3})
>>> k.update(np.array([1.0, 2.0])).tolist(), k.update(np.array([3.0, 4.0])).tolist()
([nan, nan], [2.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dataflows.kernels.base import Kernel, make_kernel, register, window_length

__all__ = [
    "RollingApply",
    "RollingMax",
    "RollingMean",
    "RollingMin",
    "RollingSum",
    "RollingVar",
    "Shift",
    "Wma",
    "make_kernel",
]


@register("shift")
class Shift(Kernel):
    """The value ``n`` elements earlier; NaN for the first ``n``.

    >>> k = Shift(n=2)
    >>> k.update(np.array([1.0, 2.0, 3.0])).tolist(), k.update(np.array([4.0])).tolist()
    ([nan, nan, 1.0], [2.0])
    """

    def __init__(self, n: int) -> None:
        self.n = window_length("shift", n)
        self.buffer = np.full(self.n, np.nan)

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self.buffer, x])
        self.buffer = ext[len(ext) - self.n :].copy()
        return ext[: len(x)]


class _Tail(Kernel):
    """Keeps the last ``n - 1`` inputs so each batch's windows are complete."""

    def __init__(self, op: str, n: int) -> None:
        self.n = window_length(op, n)
        self.tail = np.full(self.n - 1, np.nan)

    def _extend(self, x: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self.tail, x])
        self.tail = ext[len(ext) - (self.n - 1) :].copy() if self.n > 1 else self.tail
        return ext


class _RunningSum(Kernel):
    """Rolling sum as a difference of carried, anchored cumulative sums."""

    def __init__(self, op: str, n: int) -> None:
        self.n = window_length(op, n)
        self.anchor: float | None = None
        self.sum_ring = np.zeros(self.n)  # cumulative sums at the last n positions
        self.nan_ring = np.zeros(self.n)  # cumulative NaN counts at the last n positions
        self.seen = 0

    def _rolling_sum(self, x: np.ndarray) -> np.ndarray:
        m = len(x)
        if m == 0:
            return np.empty(0)
        if m == 1 and self.anchor is not None:
            fast = self._one(float(x[0]))
            if fast is not None:
                return fast
        if self.anchor is None:
            finite = x[np.isfinite(x)]
            if len(finite):
                self.anchor = float(finite[0])
        anchor = 0.0 if self.anchor is None else self.anchor
        n = self.n
        is_nan = np.isnan(x)
        any_nan = bool(is_nan.any())
        # the last n cumulative sums, then the batch's, accumulated from the carried total
        hist_sum = np.empty(n + m)
        hist_sum[:n] = self.sum_ring
        np.subtract(x, anchor, out=hist_sum[n:])
        if any_nan:
            hist_sum[n:][is_nan] = 0.0
        np.add.accumulate(hist_sum[n - 1 :], out=hist_sum[n - 1 :])
        out = hist_sum[n:] - hist_sum[:m]
        self.sum_ring = hist_sum[m:].copy()
        if any_nan or self.nan_ring[0] != self.nan_ring[-1]:
            hist_nan = np.empty(n + m)
            hist_nan[:n] = self.nan_ring
            hist_nan[n:] = is_nan
            np.add.accumulate(hist_nan[n - 1 :], out=hist_nan[n - 1 :])
            out[(hist_nan[n:] - hist_nan[:m]) > 0] = np.nan
            self.nan_ring = hist_nan[m:].copy()
        else:  # no NaN in the batch nor in the window before it: counts stay as they are
            self.nan_ring = np.full(n, self.nan_ring[-1])
        out += n * anchor
        warm = n - 1 - self.seen  # outputs before the n-th value are undefined
        if warm > 0:
            out[:warm] = np.nan
        self.seen += m
        return out

    def _one(self, v: float) -> np.ndarray | None:
        """One value, no NaN around: the same float operations as the batch path, without
        array overhead (live feeds send one bar at a time). None when it does not apply."""
        if v != v or self.nan_ring[0] != self.nan_ring[-1]:
            return None
        ring = self.sum_ring
        total = ring[-1] + (v - self.anchor)  # type: ignore[operator]
        window = total - ring[0]
        ring[:-1] = ring[1:]
        ring[-1] = total
        self.seen += 1
        if self.seen < self.n:
            return np.array([np.nan])
        return np.array([window + self.n * self.anchor])  # type: ignore[operator]


@register("rolling_sum")
class RollingSum(_RunningSum):
    """Sum of the last ``n`` values.

    >>> RollingSum(n=2).update(np.array([1.0, 2.0, 3.0])).tolist()
    [nan, 3.0, 5.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("rolling_sum", n)

    def update(self, x: np.ndarray) -> np.ndarray:
        return self._rolling_sum(x)


@register("rolling_mean")
class RollingMean(_RunningSum):
    """Mean of the last ``n`` values (TA-Lib SMA).

    >>> RollingMean(n=2).update(np.array([1.0, 2.0, 4.0])).tolist()
    [nan, 1.5, 3.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("rolling_mean", n)

    def update(self, x: np.ndarray) -> np.ndarray:
        out = self._rolling_sum(x)
        out /= self.n
        return out


@register("rolling_var")
class RollingVar(_Tail):
    """Variance of the last ``n`` values around their mean, ``ddof`` 0 (TA-Lib) or more.

    >>> RollingVar(n=2, ddof=1).update(np.array([1.0, 3.0, 3.0])).tolist()
    [nan, 2.0, 0.0]
    """

    def __init__(self, n: int, ddof: int = 0) -> None:
        super().__init__("rolling_var", n)
        if not 0 <= ddof < self.n:
            raise ValueError(f"rolling_var: ddof must be in [0, {self.n}), got {ddof}")
        self.ddof = int(ddof)
        self.mean = RollingMean(n)

    def update(self, x: np.ndarray) -> np.ndarray:
        mean = self.mean.update(x)
        ext = self._extend(x)
        m = len(x)
        acc = np.zeros(m)
        for j in range(self.n):
            d = ext[j : j + m] - mean
            acc += d * d
        return acc / (self.n - self.ddof)


def _window_extreme(fn: np.ufunc, ext: np.ndarray, n: int) -> np.ndarray:
    """``fn`` (``np.minimum`` or ``np.maximum``) over each window of ``n`` consecutive values
    of ``ext``, by doubling: the extreme of spans 1, 2, 4, ... up to the largest power of two
    ``p <= n``, then of two overlapping spans ``p`` (``log2 n + 1`` vector passes instead of
    a strided reduction per window). Exact: a min or max rounds nothing, and a NaN in a
    window propagates through ``fn`` as through ``ndarray.max``.

    >>> _window_extreme(np.maximum, np.array([3.0, 1.0, 2.0, 5.0, 4.0]), 3).tolist()
    [3.0, 5.0, 5.0]
    >>> _window_extreme(np.minimum, np.array([3.0, np.nan, 2.0, 5.0]), 2).tolist()
    [nan, nan, 2.0]
    """
    cur, span = ext, 1
    while span * 2 <= n:
        cur = fn(cur[:-span], cur[span:])  # cur[i]: the extreme of ext[i : i + 2 * span]
        span *= 2
    if span == n:
        return cur if cur is not ext else ext.copy()
    m = len(ext) - n + 1
    return fn(cur[:m], cur[n - span : n - span + m])


@register("rolling_min")
class RollingMin(_Tail):
    """Minimum of the last ``n`` values.

    >>> RollingMin(n=2).update(np.array([3.0, 1.0, 2.0])).tolist()
    [nan, 1.0, 1.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("rolling_min", n)

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = self._extend(x)
        return _window_extreme(np.minimum, ext, self.n) if len(x) else np.empty(0)


@register("rolling_max")
class RollingMax(_Tail):
    """Maximum of the last ``n`` values.

    >>> RollingMax(n=2).update(np.array([3.0, 1.0, 2.0])).tolist()
    [nan, 3.0, 2.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("rolling_max", n)

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = self._extend(x)
        return _window_extreme(np.maximum, ext, self.n) if len(x) else np.empty(0)


@register("wma")
class Wma(_Tail):
    """Linearly weighted mean of the last ``n`` values, newest weight ``n`` (TA-Lib WMA).

    >>> Wma(n=2).update(np.array([1.0, 4.0])).tolist()
    [nan, 3.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("wma", n)
        self.denominator = self.n * (self.n + 1) / 2.0

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = self._extend(x)
        m = len(x)
        acc = np.zeros(m)
        for j in range(self.n):
            acc += (j + 1) * ext[j : j + m]
        return acc / self.denominator


@register("rolling_apply")
class RollingApply(_Tail):
    """A Python function over each window of ``n`` values (oldest first); NaN while the
    window is incomplete or holds a NaN.

    >>> RollingApply(n=2, fn=lambda w: w[1] - w[0]).update(np.array([1.0, 4.0, 9.0])).tolist()
    [nan, 3.0, 5.0]
    """

    def __init__(self, n: int, fn: Callable[[np.ndarray], float]) -> None:
        super().__init__("rolling_apply", n)
        if not callable(fn):
            raise ValueError(f"rolling_apply: fn must be callable, got {fn!r}")
        self.fn = fn

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = self._extend(x)
        if not len(x):
            return np.empty(0)
        windows = sliding_window_view(ext, self.n)
        out = np.empty(len(x))
        for i, w in enumerate(windows):
            out[i] = np.nan if np.isnan(w).any() else float(self.fn(w.copy()))
        return out
