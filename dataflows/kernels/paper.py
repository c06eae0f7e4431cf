"""Kernels the alpha language's published notations need beyond the engine's own: of
"101 Formulaic Alphas", where in the window the maximum or minimum is (``ts_argmax``,
``ts_argmin``) and the product of the window (``product``); of symbolic-regression tools
(sympy, PySR), ``sin`` and ``cos``. Each window kernel keeps the last ``n - 1`` values of
its input, so any batching of the stream gives the same values; windows follow pandas'
``min_periods=n`` (NaN until ``n`` values are seen and whenever the window holds a NaN).

>>> k = make_kernel("ts_argmax", {"n": 3})
>>> k.update(np.array([1.0, 3.0])).tolist(), k.update(np.array([2.0, 0.5])).tolist()
([nan, nan], [1.0, 2.0])
"""

from __future__ import annotations

import numpy as np

from dataflows.kernels.base import Kernel, make_kernel, register, window_length
from dataflows.kernels.elementwise import Unary

__all__ = ["Cos", "Sin", "TsArgMax", "TsArgMin", "TsProduct", "make_kernel"]


@register("sin")
class Sin(Unary):
    """Sine, elementwise (radians; NaN stays NaN).

    >>> Sin().update(np.array([0.0, np.nan])).tolist()
    [0.0, nan]
    """

    fn = staticmethod(np.sin)


@register("cos")
class Cos(Unary):
    """Cosine, elementwise.

    >>> Cos().update(np.array([0.0])).tolist()
    [1.0]
    """

    fn = staticmethod(np.cos)


class _Window(Kernel):
    """The last ``n`` values of a stream as a ``(m, n)`` view per batch, oldest first."""

    def __init__(self, op: str, n: int) -> None:
        self.n = window_length(op, n)
        self.tail = np.full(self.n - 1, np.nan)

    def windows(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.empty((0, self.n))
        ext = np.concatenate([self.tail, np.asarray(x, dtype=np.float64)])
        self.tail = ext[len(ext) - (self.n - 1):].copy()
        return np.lib.stride_tricks.sliding_window_view(ext, self.n)


class _ArgExtreme(_Window):
    pick = staticmethod(np.argmax)

    def update(self, x: np.ndarray) -> np.ndarray:
        w = self.windows(x)
        if len(w) == 0:
            return np.empty(0)
        bad = np.isnan(w).any(axis=1)
        newest_first = np.where(np.isnan(w), 0.0, w)[:, ::-1]
        out = type(self).pick(newest_first, axis=1).astype(np.float64)
        out[bad] = np.nan
        return out


@register("ts_argmax")
class TsArgMax(_ArgExtreme):
    """Bars since the window's maximum: 0 when it is the current value, ``n - 1`` when it
    is the oldest; of equal maxima, the most recent.

    >>> TsArgMax(n=3).update(np.array([5.0, 1.0, 2.0, 2.0, 0.0])).tolist()
    [nan, nan, 2.0, 0.0, 1.0]
    """

    pick = staticmethod(np.argmax)

    def __init__(self, n: int) -> None:
        super().__init__("ts_argmax", n)


@register("ts_argmin")
class TsArgMin(_ArgExtreme):
    """Bars since the window's minimum (0: the current value; ties: the most recent).

    >>> TsArgMin(n=2).update(np.array([5.0, 1.0, 2.0])).tolist()
    [nan, 0.0, 1.0]
    """

    pick = staticmethod(np.argmin)

    def __init__(self, n: int) -> None:
        super().__init__("ts_argmin", n)


@register("ts_product")
class TsProduct(_Window):
    """Product of the last ``n`` values.

    >>> TsProduct(n=2).update(np.array([2.0, 3.0, -1.0])).tolist()
    [nan, 6.0, -3.0]
    """

    def __init__(self, n: int) -> None:
        super().__init__("ts_product", n)

    def update(self, x: np.ndarray) -> np.ndarray:
        w = self.windows(x)
        return w.prod(axis=1) if len(w) else np.empty(0)
