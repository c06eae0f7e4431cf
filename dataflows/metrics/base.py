"""What every metric shares: the :class:`Metric` contract, a batch of :class:`Periods` with the
quantities several metrics derive from it (computed once), and mergeable :class:`Moments`.

>>> p = Periods([0.5, -0.5], start=2.0)
>>> p.path.tolist(), p.moments.n
([2.0, 3.0, 1.5], 2)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np

NAN = float("nan")


def as_values(batch: Any) -> np.ndarray:
    """A batch of per-period values as a flat float64 array.

    >>> as_values([[1, 2], [3, 4]]).tolist()
    [1.0, 2.0, 3.0, 4.0]
    """
    return np.asarray(batch, dtype=np.float64).ravel()


class Moments:
    """Count, mean and sum of squared deviations, merged with Chan et al.'s formula.

    >>> m = Moments.of(np.array([1.0, 2.0]))
    >>> m.merge(Moments.of(np.array([3.0])))
    >>> m.n, m.mean, m.std()
    (3, 2.0, 1.0)
    """

    __slots__ = ("m2", "mean", "n")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """The moments of one batch.

        >>> Moments.of(np.array([0.5, 0.5])).m2
        0.0
        """
        out = cls()
        if len(x):
            mu = float(x.mean())
            # identical values have no spread, whatever the rounding of their mean
            m2 = 0.0 if x.min() == x.max() else float(((x - mu) ** 2).sum())
            out.n, out.mean, out.m2 = len(x), mu, m2
        return out

    def merge(self, other: Moments) -> None:
        """Add the moments of the periods that follow (or of any other periods).

        >>> m = Moments()
        >>> m.merge(Moments.of(np.array([2.0, 4.0])))
        >>> m.n, m.mean, m.m2
        (2, 3.0, 2.0)
        """
        n, mean, m2 = other.n, other.mean, other.m2
        if n == 0:
            return
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, m2
            return
        total = self.n + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.n * n / total
        self.n = total

    def std(self) -> float:
        """Sample standard deviation (ddof=1); NaN below two values.

        >>> Moments.of(np.array([1.0])).std()
        nan
        """
        if self.n < 2:
            return NAN
        sd = math.sqrt(self.m2 / (self.n - 1))
        # below the rounding of the mean, a deviation is noise: treat it as none
        return 0.0 if sd <= 1e-13 * abs(self.mean) else sd


class Periods:
    """One batch of per-period values and what several metrics derive from it, each computed
    on first use and then shared: the equity path, the moments, the downside sum of squares.

    ``start`` is the equity before the batch. ``equity``, the equity after each value as the
    portfolio compounded it from ``start`` (left to right), saves computing the path again;
    it is used only when its length and first value agree with the values.

    >>> p = Periods([0.5, -0.5], start=1.0, equity=np.array([1.5, 0.75]))
    >>> p.path.tolist(), p.path_from(2.0).tolist()
    ([1.0, 1.5, 0.75], [2.0, 3.0, 1.5])
    >>> p.downside_sq
    0.25
    """

    __slots__ = ("_downside_sq", "_moments", "_path", "start", "values")

    def __init__(self, values: Any, start: float = 1.0, equity: np.ndarray | None = None) -> None:
        self.values = as_values(values)
        self.start = start
        self._path: np.ndarray | None = None
        self._moments: Moments | None = None
        self._downside_sq: float | None = None
        r = self.values
        if equity is not None and len(r) and len(equity) == len(r) and (
            equity[0] == start * (1.0 + r[0])
        ):
            self._path = np.concatenate([[start], equity])

    def __len__(self) -> int:
        return len(self.values)

    @property
    def path(self) -> np.ndarray:
        """``start`` followed by the equity after each value: ``start * prod(1 + r)``.

        >>> Periods([1.0, -0.5]).path.tolist()
        [1.0, 2.0, 1.0]
        """
        if self._path is None:
            self._path = self.path_from(self.start, cache=False)
        return self._path

    def path_from(self, start: float, cache: bool = True) -> np.ndarray:
        """The equity path from ``start`` (the shared :attr:`path` when ``start`` is its own).

        >>> Periods([1.0]).path_from(3.0).tolist()
        [3.0, 6.0]
        """
        if cache and start == self.start:
            return self.path
        return np.multiply.accumulate(np.concatenate([[start], 1.0 + self.values]))

    @property
    def moments(self) -> Moments:
        """Count, mean and sum of squared deviations of the values.

        >>> Periods([1.0, 3.0]).moments.mean
        2.0
        """
        if self._moments is None:
            self._moments = Moments.of(self.values)
        return self._moments

    @property
    def downside_sq(self) -> float:
        """Sum of squares of the negative values.

        >>> Periods([0.5, -0.5, -1.0]).downside_sq
        1.25
        """
        if self._downside_sq is None:
            neg = np.minimum(self.values, 0.0)
            self._downside_sq = float((neg * neg).sum())
        return self._downside_sq


class Metric(ABC):
    """A streaming, mergeable metric: ``update``, ``get`` and ``+=``.

    ``update(batch)`` consumes the next batch of per-period values; ``update_periods`` is the
    same over a :class:`Periods`, whose derived quantities several metrics can share;
    ``a += b`` merges a metric of the periods that follow ``a``'s.

    >>> class Total(Metric):
    ...     def __init__(self):
    ...         self.sum = 0.0
    ...     def update_periods(self, periods):
    ...         self.sum += float(periods.values.sum())
    ...         return self
    ...     def get(self):
    ...         return self.sum
    ...     def __iadd__(self, other):
    ...         self.sum += other.sum
    ...         return self
    >>> Total().update([1.0, 2.0])
    Total: 3
    """

    def update(self, batch: Any) -> Self:
        """Consume the next batch of per-period values."""
        return self.update_periods(Periods(batch))

    @abstractmethod
    def update_periods(self, periods: Periods) -> Self:
        """Consume the next batch, reusing what ``periods`` has already derived."""

    @abstractmethod
    def get(self) -> float:
        """The current value."""

    @abstractmethod
    def __iadd__(self, other: Self) -> Self:
        """Merge the metric of the periods that follow this one's."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self.get():.6g}"


def finite(value: float) -> float:
    """``value`` with NaN as 0.0 and +-inf as +-1e9.

    >>> finite(float("inf")), finite(float("nan")), finite(2.5)
    (1000000000.0, 0.0, 2.5)
    """
    if math.isnan(value):
        return 0.0
    if math.isinf(value):
        return math.copysign(1e9, value)
    return value
