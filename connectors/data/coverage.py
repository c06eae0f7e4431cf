"""Coverage: which time ranges of a (symbol, interval) a layer holds, as a set of ranges.

A :class:`Coverage` is a sorted list of disjoint, non-adjacent closed ranges ``[start, end]``
of bar times (int64 ns). Two ranges that touch on the bar grid (the next bar after one is
the first of the other) merge, so "what is missing" is answered in whole bars.

>>> day = 86_400 * 10**9
>>> have = Coverage(step=day).add(0, 9 * day).add(20 * day, 29 * day)
>>> have.ranges
[(0, 777600000000000), (1728000000000000, 2505600000000000)]
>>> [(a // day, b // day) for a, b in have.missing(0, 39 * day)]
[(10, 19), (30, 39)]
>>> have.add(10 * day, 19 * day).ranges == [(0, 29 * day)]
True
"""

from __future__ import annotations

from collections.abc import Iterable


class Coverage:
    """A set of closed time ranges on a grid of ``step`` ns (see the module docstring)."""

    __slots__ = ("ranges", "step")

    def __init__(self, ranges: Iterable[tuple[int, int]] = (), step: int = 1) -> None:
        if step < 1:
            raise ValueError(f"step must be >= 1 ns, got {step}")
        self.step = int(step)
        self.ranges: list[tuple[int, int]] = []
        for a, b in ranges:
            self.add(a, b)

    def __repr__(self) -> str:
        return f"Coverage({self.ranges!r}, step={self.step})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Coverage) and (self.ranges, self.step) == (
            other.ranges,
            other.step,
        )

    def add(self, start: int, end: int) -> Coverage:
        """Include ``[start, end]``, merging with overlapping or adjacent ranges."""
        if end < start:
            raise ValueError(f"empty range: end {end} < start {start}")
        out: list[tuple[int, int]] = []
        lo, hi = int(start), int(end)
        placed = False
        for a, b in self.ranges:
            if b + self.step < lo:
                out.append((a, b))
            elif hi + self.step < a:
                if not placed:
                    out.append((lo, hi))
                    placed = True
                out.append((a, b))
            else:
                lo, hi = min(lo, a), max(hi, b)
        if not placed:
            out.append((lo, hi))
        out.sort()
        self.ranges = out
        return self

    def contains(self, start: int, end: int) -> bool:
        """True when ``[start, end]`` is wholly covered.

        >>> Coverage([(0, 10)]).contains(2, 5), Coverage([(0, 10)]).contains(5, 11)
        (True, False)
        """
        return any(a <= start and end <= b for a, b in self.ranges)

    def missing(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of ``[start, end]`` not covered, in whole steps.

        >>> Coverage([(3, 5)]).missing(0, 9)
        [(0, 2), (6, 9)]
        """
        if end < start:
            return []
        gaps: list[tuple[int, int]] = []
        cursor = int(start)
        for a, b in self.ranges:
            if b < cursor:
                continue
            if a > end:
                break
            if a > cursor:
                gaps.append((cursor, min(a - self.step, end)))
            cursor = max(cursor, b + self.step)
            if cursor > end:
                break
        if cursor <= end:
            gaps.append((cursor, end))
        return [(a, b) for a, b in gaps if a <= b]

    def subtract(self, start: int, end: int) -> Coverage:
        """Remove ``[start, end]``.

        >>> Coverage([(0, 9)]).subtract(3, 5).ranges
        [(0, 2), (6, 9)]
        """
        out: list[tuple[int, int]] = []
        for a, b in self.ranges:
            if b < start or a > end:
                out.append((a, b))
                continue
            if a < start:
                out.append((a, start - self.step))
            if b > end:
                out.append((end + self.step, b))
        self.ranges = [(a, b) for a, b in out if a <= b]
        return self

    def total(self) -> int:
        """Number of grid points covered.

        >>> Coverage([(0, 4), (10, 10)]).total()
        6
        """
        return sum((b - a) // self.step + 1 for a, b in self.ranges)
