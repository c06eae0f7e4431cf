"""Time-series kernels of the alpha language that are not compositions of other nodes: the
rank of the current value in its window, and the covariance and correlation of two series
over a window.

Each output is computed from its own window only, with the window offsets visited in one
fixed order (one vectorized step per offset over the batch), so the bits do not depend on how
the stream is split into batches. Windows follow pandas' ``min_periods=n``: NaN until ``n``
values are seen and whenever the window (of either input) holds a NaN.

>>> k = make_kernel("ts_rank", {"n": 3})
>>> k.update(np.array([1.0, 3.0])).tolist(), k.update(np.array([2.0, 5.0])).tolist()
([nan, nan], [0.5, 1.0])
"""

from __future__ import annotations

import numpy as np

from dataflows.kernels.base import Kernel, make_kernel, register, window_length

__all__ = ["TsCorr", "TsCov", "TsRank", "make_kernel"]


def _window_of_two(op: str, n: int) -> int:
    """``n`` as a window length of at least 2 (a rank or a sample moment of one value is
    undefined).

    >>> _window_of_two("ts_cov", 1)
    Traceback (most recent call last):
    ...
    ValueError: ts_cov: n must be at least 2, got 1
    """
    n = window_length(op, n)
    if n < 2:
        raise ValueError(f"{op}: n must be at least 2, got {n}")
    return n


class _Tails(Kernel):
    """Keeps the last ``n - 1`` values of each input so each batch's windows are complete."""

    def __init__(self, op: str, n: int, inputs: int) -> None:
        self.n = _window_of_two(op, n)
        self.tails = [np.full(self.n - 1, np.nan) for _ in range(inputs)]

    def _extend(self, *xs: np.ndarray) -> list[np.ndarray]:
        out = []
        for i, x in enumerate(xs):
            ext = np.concatenate([self.tails[i], np.asarray(x, dtype=np.float64)])
            self.tails[i] = ext[len(ext) - (self.n - 1) :].copy()
            out.append(ext)
        return out

    def _windows(self, ext: np.ndarray, m: int) -> list[np.ndarray]:
        """The ``n`` views ``ext[j : j + m]``, oldest offset first."""
        return [ext[j : j + m] for j in range(self.n)]


@register("ts_rank")
class TsRank(_Tails):
    """Rank of the current value among the last ``n`` (itself included), scaled to [0, 1]:
    0 for the smallest, 1 for the largest; ties share their average rank.
    ``(rank - 1) / (n - 1)`` with pandas' ``rolling(n).rank()`` as ``rank``.

    >>> TsRank(n=2).update(np.array([1.0, 2.0, 2.0, 0.0])).tolist()
    [nan, 1.0, 0.5, 0.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("ts_rank", n, 1)

    def update(self, x: np.ndarray) -> np.ndarray:
        (ext,) = self._extend(x)
        m = len(x)
        if m == 0:
            return np.empty(0)
        current = ext[self.n - 1 :]
        less = np.zeros(m)
        equal = np.zeros(m)
        missing = np.zeros(m, dtype=bool)
        for w in self._windows(ext, m):
            less += w < current
            equal += w == current
            missing |= np.isnan(w)
        out = (less + (equal - 1.0) / 2.0) / (self.n - 1)
        out[missing] = np.nan
        return out


class _Moments(_Tails):
    """The centred sums of two series over each window: ``sum dx*dy`` and, when asked,
    ``sum dx*dx`` and ``sum dy*dy``, with the means from the same window."""

    def _sums(
        self, x: np.ndarray, y: np.ndarray, squares: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ext_x, ext_y = self._extend(x, y)
        m = len(x)
        wx, wy = self._windows(ext_x, m), self._windows(ext_y, m)
        mean_x, mean_y = np.zeros(m), np.zeros(m)
        for a, b in zip(wx, wy, strict=True):
            mean_x += a
            mean_y += b
        mean_x /= self.n
        mean_y /= self.n
        sxy, sxx, syy = np.zeros(m), np.zeros(m), np.zeros(m)
        # a window of equal values has no spread, but its rounded mean would leave a trace:
        # such windows are marked flat
        flat_x, flat_y = np.ones(m, dtype=bool), np.ones(m, dtype=bool)
        for a, b in zip(wx, wy, strict=True):
            dx, dy = a - mean_x, b - mean_y
            sxy += dx * dy
            if squares:
                sxx += dx * dx
                syy += dy * dy
                flat_x &= a == wx[-1]
                flat_y &= b == wy[-1]
        flat = flat_x | flat_y
        return sxy, sxx, syy, flat


@register("ts_cov")
class TsCov(_Moments):
    """Sample covariance (``ddof=1``, as pandas' ``rolling(n).cov``) of two series over the
    last ``n`` values.

    >>> TsCov(n=2).update(np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 3.0])).tolist()
    [nan, 1.0, 0.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("ts_cov", n, 2)

    def update(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if len(x) != len(y):
            raise ValueError(f"ts_cov: inputs of {len(x)} and {len(y)} values")
        sxy, _, _, _ = self._sums(x, y, squares=False)
        return sxy / (self.n - 1)


@register("ts_corr")
class TsCorr(_Moments):
    """Pearson correlation of two series over the last ``n`` values (pandas'
    ``rolling(n).corr``); NaN where either series is constant over the window.

    >>> TsCorr(n=3).update(np.array([1.0, 2.0, 3.0, 3.0]), np.array([2.0, 4.0, 7.0, 1.0]))
    array([       nan,        nan, 0.99339927, 0.        ])
    """

    def __init__(self, n: int) -> None:
        super().__init__("ts_corr", n, 2)

    def update(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        if len(x) != len(y):
            raise ValueError(f"ts_corr: inputs of {len(x)} and {len(y)} values")
        sxy, sxx, syy, flat = self._sums(x, y, squares=True)
        with np.errstate(all="ignore"):
            out = sxy / np.sqrt(sxx * syy)
        out[flat] = np.nan
        return out
