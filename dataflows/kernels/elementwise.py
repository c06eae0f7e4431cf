"""Stateless kernels, one output per input element: arithmetic, math functions,
comparisons, logic, clipping, selection and NaN filling.

>>> make_kernel("add", {}).update(np.array([1.0]), np.array([2.0])).tolist()
[3.0]
>>> make_kernel("and", {}).update(np.array([1.0, np.nan]), np.array([2.0, 2.0])).tolist()
[1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dataflows.kernels.base import Kernel, make_kernel, register

__all__ = [
    "And",
    "Binary",
    "Clip",
    "Compare",
    "FillNa",
    "Not",
    "Or",
    "Unary",
    "Where",
    "make_kernel",
    "truthy",
]


def truthy(x: np.ndarray) -> np.ndarray:
    """Boolean view of a float series: nonzero and not NaN.

    >>> truthy(np.array([0.0, 1.0, np.nan, -2.0])).tolist()
    [False, True, False, True]
    """
    return (x != 0) & ~np.isnan(x)


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
