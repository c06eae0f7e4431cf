"""Incremental score statistics and ranks of a world's strategies.

A world scores its eligible strategies by z-scores of the policy's score metrics across the
eligible set (see :func:`world_api.domain.scoring.score_and_rank`). Recomputing the
statistics of every column on every update costs a sort per column; instead
:class:`ScoreBook` keeps, per column, the count and the **exact** sum and sum of squares of
the eligible finite values (Python integers in units of the smallest double, 2**-1074), so
one strategy's update adds and removes its own row in O(1), and the mean and standard
deviation are correctly rounded from exact sums: the same bits whatever the arrival order,
hence equal to a from-scratch recompute (:func:`exact_mean_sd`) and reproduced by an engine
rebuilt from its stored state.

Scores are then a few vectorized operations over the rows; the rank order is produced
lazily (:meth:`ScoreBook.order`: a partial sort of the best rows first, the full sort only if
the consumer reads past them) and the full rank vector only when someone asks for it.

>>> import numpy as np
>>> book = ScoreBook(np.array([1.0]))
>>> for v in (1.0, 3.0, 2.0):
...     book.set_row(book.add_row(), np.array([v]), True)
>>> book.set_row(2, np.array([2.0]), False)
>>> list(book.order()), book.ranks().tolist()
([1, 0], [2, 1, 0])
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

SCALE = 1074
"""Exact sums are kept in units of 2**-SCALE (the smallest subnormal double)."""

TOP = 32
"""Rows the first partial sort of :meth:`ScoreBook.order` puts in order."""


def exact(x: float) -> int:
    """``x`` (finite) as an exact integer multiple of 2**-1074.

    >>> exact(0.5) == 1 << 1073
    True
    """
    num, den = float(x).as_integer_ratio()
    return num * ((1 << SCALE) // den)


def mean_sd(n: int, s1: int, s2: int) -> tuple[float, float]:
    """Correctly rounded mean and population standard deviation of ``n`` values whose exact
    scaled sum is ``s1`` and sum of squares ``s2`` (see :func:`exact`).

    >>> mean_sd(2, exact(1.0) + exact(3.0), exact(1.0) ** 2 + exact(3.0) ** 2)
    (2.0, 1.0)
    """
    mean = s1 / (n << SCALE)  # int / int: correctly rounded
    try:
        var = (n * s2 - s1 * s1) / ((n * n) << (2 * SCALE))  # >= 0 exactly
    except OverflowError:  # beyond the largest double
        var = math.inf
    return mean, math.sqrt(var)


def exact_mean_sd(values: np.ndarray) -> tuple[float, float]:
    """Mean and population std of ``values`` (finite, non-empty) from exact sums: the
    from-scratch reference of :class:`ScoreBook`'s statistics.

    >>> exact_mean_sd(np.array([0.1, 0.2, 0.3]))[0] == 0.2
    True
    """
    ints = [exact(v) for v in values.tolist()]
    return mean_sd(len(ints), sum(ints), sum(i * i for i in ints))


def combine(
    cols: np.ndarray, weights: np.ndarray, stats: list[tuple[float, float] | None]
) -> np.ndarray:
    """The score of each row, given the metric columns ``cols`` (shape ``(metrics, rows)``,
    NaN where missing): the sum over columns of ``(x - mean) * (weight / sd)``, the weighted
    z-score, with its ``(mean, sd)`` (a column with no spread adds 0, a missing value
    ``-3 * weight``; a column whose stats are None, no finite value at all, adds nothing).
    Element-wise only, so a row's score has the same bits wherever the row sits.

    >>> combine(np.array([[1.0, 3.0]]), np.ones(1), [(2.0, 1.0)]).tolist()
    [-1.0, 1.0]
    """
    total = np.zeros(cols.shape[1])
    for j, weight in enumerate(weights.tolist()):
        if stats[j] is None:
            continue
        mean, sd = stats[j]  # type: ignore[misc]
        col = cols[j]
        part = (col - mean) * (weight / sd) if sd else np.zeros(len(col))
        total += np.where(np.isnan(col), -3.0 * weight, part)
    return total


class ScoreBook:
    """Rows of score metrics with eligibility, the exact running sums of the eligible rows'
    finite values per column, and lazily computed scores and ranks (module docstring)."""

    def __init__(self, weights: np.ndarray, sid_rank: np.ndarray | None = None) -> None:
        self.weights = weights
        k = len(weights)
        # rows live in buffers that double when full, so adding a row costs O(1) amortized
        # (not a copy of every row); ``cols``, ``elig`` and ``sid_rank`` are views of the rows
        self.rows = 0
        self._cols = np.full((k, 0), np.nan)  # one contiguous row per metric
        self._elig = np.zeros(0, dtype=bool)
        self._sid_rank = np.zeros(0, dtype=np.int64)
        self._ranked = 0 if sid_rank is None else len(sid_rank)  # rows with an owner's rank
        if sid_rank is not None:
            self._sid_rank = np.array(sid_rank, dtype=np.int64)
        self._n = [0] * k
        self._s1 = [0] * k
        self._s2 = [0] * k
        self._score: np.ndarray | None = None
        self._rank: np.ndarray | None = None

    @property
    def cols(self) -> np.ndarray:
        """The metric values, shape ``(metrics, rows)`` (NaN where missing)."""
        return self._cols[:, : self.rows]

    @property
    def elig(self) -> np.ndarray:
        """Each row's eligibility."""
        return self._elig[: self.rows]

    @property
    def sid_rank(self) -> np.ndarray:
        """Each row's tie-break rank (its id's place among the ids, when the owner says)."""
        return self._sid_rank[: self.rows]

    @sid_rank.setter
    def sid_rank(self, ranks: np.ndarray) -> None:
        self._grow(len(ranks))
        self._sid_rank[: len(ranks)] = ranks
        self._ranked = len(ranks)
        self._score = self._rank = None

    def _grow(self, need: int) -> None:
        cap = len(self._elig)
        if need <= cap:
            return
        cap = max(need, 2 * cap, 16, len(self._sid_rank))  # an owner's ranks may be longer
        cols = np.full((len(self.weights), cap), np.nan)
        cols[:, : self.rows] = self._cols[:, : self.rows]
        elig = np.zeros(cap, dtype=bool)
        elig[: self.rows] = self._elig[: self.rows]
        ranks = np.zeros(cap, dtype=np.int64)
        ranks[: len(self._sid_rank)] = self._sid_rank
        self._cols, self._elig, self._sid_rank = cols, elig, ranks

    def add_row(self, sid_pos: int | None = None) -> int:
        """Append an empty, ineligible row; return its index. ``sid_pos``: the new row's
        place among the ids in order (the rows at or after it move one down); None: ties by
        row, until the owner sets :attr:`sid_rank`. O(rows) vectorized, no sort."""
        i = self.rows
        self._grow(i + 1)
        self.rows = i + 1
        if i >= self._ranked:
            if sid_pos is None:
                self._sid_rank[i] = i
            else:
                ranks = self._sid_rank[:i]
                ranks[ranks >= sid_pos] += 1
                self._sid_rank[i] = sid_pos
            self._ranked = i + 1
        self._score = self._rank = None
        return i

    def _account(self, row: np.ndarray, sign: int) -> None:
        for j, v in enumerate(row.tolist()):
            if math.isfinite(v):
                e = exact(v)
                self._n[j] += sign
                self._s1[j] += sign * e
                self._s2[j] += sign * e * e

    def set_row(self, i: int, values: np.ndarray, eligible: bool) -> None:
        """Set row ``i``'s metric values (NaN where missing) and eligibility: O(columns)."""
        if self.elig[i]:
            self._account(self.cols[:, i], -1)
        self.cols[:, i] = values
        self.elig[i] = eligible
        if eligible:
            self._account(self.cols[:, i], +1)
        self._score = self._rank = None

    def stats(self) -> list[tuple[float, float] | None]:
        """``(mean, sd)`` per column over the eligible finite values (None when none)."""
        return [
            mean_sd(n, s1, s2) if n else None
            for n, s1, s2 in zip(self._n, self._s1, self._s2, strict=True)
        ]

    def score(self) -> np.ndarray:
        """Each row's score (NaN when not eligible); recomputed only after a change."""
        if self._score is None:
            total = combine(self.cols, self.weights, self.stats())
            self._score = np.where(self.elig, total, np.nan)
        return self._score

    def _sorted(self, idx: np.ndarray) -> np.ndarray:
        return idx[np.lexsort((self.sid_rank[idx], -self.score()[idx]))]

    def order(self) -> Iterator[int]:
        """The eligible rows in rank order (best first, ties by ``sid_rank``), lazily: the
        first :data:`TOP` from a partial sort, the rest only if read."""
        score = self.score()
        n_elig = int(np.count_nonzero(self.elig))
        head: list[int] = []
        if n_elig > TOP:
            filled = np.where(np.isnan(score), -np.inf, score)  # not eligible: last
            threshold = np.partition(filled, len(filled) - TOP)[len(filled) - TOP]
            if np.isfinite(threshold):
                # every row tied at the threshold too, so this is a prefix of the full order
                head = self._sorted(np.flatnonzero(filled >= threshold)).tolist()
                yield from head
        yield from self._sorted(np.flatnonzero(self.elig))[len(head) :].tolist()

    def rank_key(self, i: int) -> tuple[bool, float, int]:
        """A sort key of row ``i`` (eligible) that orders rows as :meth:`order` does."""
        sc = float(self.score()[i])
        return (math.isnan(sc), 0.0 if math.isnan(sc) else -sc, int(self.sid_rank[i]))

    def ranks(self) -> np.ndarray:
        """1 = best, 0 = not eligible; computed only when asked after a change."""
        if self._rank is None:
            rank = np.zeros(len(self.elig), dtype=np.int64)
            order = self._sorted(np.flatnonzero(self.elig))
            rank[order] = np.arange(1, len(order) + 1)
            self._rank = rank
        return self._rank
