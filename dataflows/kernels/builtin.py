"""The built-in kernels: elementwise, rolling windows, recursive smoothing, Python windows.

Every stateful kernel carries what it needs (a tail of inputs, running sums, a filter
state) so that its output is bit-identical however the stream is split into batches:

- running sums use ``np.add.accumulate`` from the carried total (strictly sequential),
  anchored at the first finite input to keep magnitudes (and rounding) small;
- windowed statistics that need more than a sum loop over the window offsets in a fixed
  order, each step one vectorized operation over the batch;
- exponential smoothing runs ``scipy.signal.lfilter`` and carries its final state as is.

Windows follow pandas' ``min_periods=n``: NaN until ``n`` values are seen and whenever the
window holds a NaN. EMA skips leading NaNs before seeding; after seeding a NaN input makes
every later value NaN (so a strategy should not feed it interior NaNs).

>>> import numpy as np
>>> k = make_kernel("rolling_mean", {"n": 3})
>>> k.update(np.array([1.0, 2.0])).tolist(), k.update(np.array([3.0, 4.0])).tolist()
([nan, nan], [2.0, 3.0])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from dataflows.kernels.base import Kernel, make_kernel, register

__all__ = ["make_kernel", "truthy"]


def truthy(x: np.ndarray) -> np.ndarray:
    """Boolean view of a float series: nonzero and not NaN.

    >>> truthy(np.array([0.0, 1.0, np.nan, -2.0])).tolist()
    [False, True, False, True]
    """
    return (x != 0) & ~np.isnan(x)


def _window(op: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{op}: n must be a positive integer, got {n!r}")
    return int(n)


# -- elementwise ---------------------------------------------------------------------------

_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "maximum": np.maximum,
    "minimum": np.minimum,
}
_UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "neg": np.negative,
    "abs": np.abs,
    "log": np.log,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "sign": np.sign,
}
_COMPARE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
}


class Binary(Kernel):
    """A stateless two-input numpy function (NaN propagates).

    >>> make_kernel("div", {}).update(np.array([1.0, 1.0]), np.array([2.0, 0.0])).tolist()
    [0.5, inf]
    """

    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def update(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.fn(a, b)


class Unary(Kernel):
    """A stateless one-input numpy function.

    >>> make_kernel("log", {}).update(np.array([1.0])).tolist()
    [0.0]
    """

    fn: Callable[[np.ndarray], np.ndarray]

    def update(self, a: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.fn(a)


class Compare(Kernel):
    """A comparison giving 1.0 / 0.0; a NaN operand gives 0.0 (also for ``ne``).

    >>> make_kernel("ne", {}).update(np.array([1.0, np.nan]), np.array([2.0, 2.0])).tolist()
    [1.0, 0.0]
    """

    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def update(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            out = self.fn(a, b)
            if self.fn is np.not_equal:  # the only comparison that is true for NaN
                out &= ~(np.isnan(a) | np.isnan(b))
        return out.astype(np.float64)


for _name, _fn in _BINARY.items():
    register(_name)(type(f"{_name.title()}Kernel", (Binary,), {"fn": staticmethod(_fn)}))
for _name, _fn in _UNARY.items():
    register(_name)(type(f"{_name.title()}Kernel", (Unary,), {"fn": staticmethod(_fn)}))
for _name, _fn in _COMPARE.items():
    register(_name)(type(f"{_name.title()}Kernel", (Compare,), {"fn": staticmethod(_fn)}))


@register("and")
class And(Kernel):
    """Logical and of truthiness, as 1.0 / 0.0.

    >>> And().update(np.array([1.0, 1.0]), np.array([np.nan, 2.0])).tolist()
    [0.0, 1.0]
    """

    def update(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (truthy(a) & truthy(b)).astype(np.float64)


@register("or")
class Or(Kernel):
    """Logical or of truthiness, as 1.0 / 0.0.

    >>> Or().update(np.array([0.0, 0.0]), np.array([np.nan, 2.0])).tolist()
    [0.0, 1.0]
    """

    def update(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (truthy(a) | truthy(b)).astype(np.float64)


@register("not")
class Not(Kernel):
    """Logical not of truthiness (NaN counts as false, so ``not NaN`` is 1.0).

    >>> Not().update(np.array([0.0, 3.0, np.nan])).tolist()
    [1.0, 0.0, 1.0]
    """

    def update(self, a: np.ndarray) -> np.ndarray:
        return (~truthy(a)).astype(np.float64)


@register("clip")
class Clip(Kernel):
    """Limit to ``[lo, hi]``; NaN stays NaN.

    >>> Clip(lo=0.0, hi=1.0).update(np.array([-1.0, 0.5, 2.0])).tolist()
    [0.0, 0.5, 1.0]
    """

    def __init__(self, lo: float | None = None, hi: float | None = None) -> None:
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip: lo {lo} > hi {hi}")
        self.lo, self.hi = lo, hi

    def update(self, a: np.ndarray) -> np.ndarray:
        out = a
        if self.lo is not None:
            out = np.where(out < self.lo, self.lo, out)
        if self.hi is not None:
            out = np.where(out > self.hi, self.hi, out)
        return np.asarray(out, dtype=np.float64)


@register("where")
class Where(Kernel):
    """``a`` where ``cond`` is truthy, else ``b``.

    >>> Where().update(np.array([1.0, 0.0]), np.array([5.0, 5.0]), np.array([7.0, 7.0]))
    array([5., 7.])
    """

    def update(self, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.where(truthy(cond), a, b).astype(np.float64)


@register("latch")
class Latch(Kernel):
    """1.0 from a bar where ``enter`` is truthy until one where ``leave`` is (``enter`` wins
    when both are); the state is carried, so any split gives the same values.

    >>> k = Latch()
    >>> k.update(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 0.0])).tolist()
    [0.0, 1.0, 1.0]
    >>> k.update(np.array([0.0, 1.0]), np.array([1.0, 1.0])).tolist()
    [0.0, 1.0]
    """

    def __init__(self) -> None:
        self.state = 0.0

    def update(self, enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
        m = len(enter)
        if m == 0:
            return np.empty(0)
        on = truthy(enter)
        marked = on | truthy(leave)
        last = np.where(marked, np.arange(m), -1)
        np.maximum.accumulate(last, out=last)
        out = np.where(last >= 0, on[np.maximum(last, 0)], self.state).astype(np.float64)
        self.state = float(out[-1])
        return out


@register("fillna")
class FillNa(Kernel):
    """Replace NaN with a constant.

    >>> FillNa(value=0.0).update(np.array([np.nan, 1.0])).tolist()
    [0.0, 1.0]
    """

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def update(self, a: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(a), self.value, a)


# -- windows -------------------------------------------------------------------------------


@register("shift")
class Shift(Kernel):
    """The value ``n`` elements earlier; NaN for the first ``n``.

    >>> k = Shift(n=2)
    >>> k.update(np.array([1.0, 2.0, 3.0])).tolist(), k.update(np.array([4.0])).tolist()
    ([nan, nan, 1.0], [2.0])
    """

    def __init__(self, n: int) -> None:
        self.n = _window("shift", n)
        self.buffer = np.full(self.n, np.nan)

    def update(self, x: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self.buffer, x])
        self.buffer = ext[len(ext) - self.n :].copy()
        return ext[: len(x)]


class _Tail(Kernel):
    """Keeps the last ``n - 1`` inputs so each batch's windows are complete."""

    def __init__(self, op: str, n: int) -> None:
        self.n = _window(op, n)
        self.tail = np.full(self.n - 1, np.nan)

    def _extend(self, x: np.ndarray) -> np.ndarray:
        ext = np.concatenate([self.tail, x])
        self.tail = ext[len(ext) - (self.n - 1) :].copy() if self.n > 1 else self.tail
        return ext


class _RunningSum(Kernel):
    """Rolling sum as a difference of carried, anchored cumulative sums."""

    def __init__(self, op: str, n: int) -> None:
        self.n = _window(op, n)
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
        return sliding_window_view(ext, self.n).min(axis=-1) if len(x) else np.empty(0)


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
        return sliding_window_view(ext, self.n).max(axis=-1) if len(x) else np.empty(0)


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


# -- recursive -----------------------------------------------------------------------------


@register("ema")
class Ema(Kernel):
    """Exponential smoothing ``y = alpha*x + (1-alpha)*y_prev``, seeded with the mean of the
    first ``n`` values (TA-Lib EMA with ``alpha = 2/(n+1)``; Wilder's with ``1/n``).

    >>> k = Ema(n=2, alpha=0.5)
    >>> k.update(np.array([np.nan, 1.0, 3.0])).tolist(), k.update(np.array([4.0])).tolist()
    ([nan, nan, 2.0], [3.0])
    """

    def __init__(self, n: int, alpha: float) -> None:
        self.n = _window("ema", n)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"ema: alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.seed: list[float] = []
        self.state: np.ndarray | None = None

    def update(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), np.nan)
        i = 0
        while self.state is None and i < len(x):
            value = float(x[i])
            if self.seed or not np.isnan(value):
                self.seed.append(value)
                if len(self.seed) == self.n:
                    first = sum(self.seed) / self.n
                    out[i] = first
                    self.state = np.array([(1.0 - self.alpha) * first])
            i += 1
        if self.state is not None and i < len(x):
            if len(x) - i == 1:
                # lfilter's own recursion for one sample (y = z + b0*x; z = x*b1 - y*a1 with
                # b1 = 0): bit-identical, without its call overhead
                v = float(x[i])
                y = self.state[0] + self.alpha * v
                self.state = np.array([v * 0.0 - y * (self.alpha - 1.0)])
                out[i] = y
                return out
            y, self.state = lfilter([self.alpha], [1.0, self.alpha - 1.0], x[i:], zi=self.state)
            out[i:] = y
        return out
