"""The world's own return: realized (earned with the weights the world had) and pro forma
(today's weights over the active strategies' kept histories), with a backtest's metrics.

**Realized.** A strategy's return at ``t`` adds ``W_s * r_s(t)`` to the world's point at
``t``, where ``W_s`` is the strategy's weight when that return reaches the world, before the
update that carries it is evaluated: a decision takes effect from each strategy's next
return on, and a strategy's returns before its activation add nothing. Points are keyed by
time; a strategy with no return at a point's time adds 0 to it. A late return (its time
before points the world has already) adds to the point at its time, or inserts one, and
the equity from there on follows.

**From the book.** A world whose book reports (:meth:`ReturnSeries.book`) has the book's
marked-to-market return as its realized return instead: the account's return per bar, from
its fills, fees and prices. From the book's first point on, the series is the book's alone
(the points summed from records are dropped) and strategies' returns no longer add to it;
``source`` says which (``"records"`` or ``"book"``).

**Pro forma.** ``sum_s W_s * r_s(t)`` over the active strategies' kept returns with the
weights in effect now, at every time any of them has a return (again 0 for a strategy with
none at that time).

>>> rs = ReturnSeries()
>>> rs.add([(20, 0.1), (30, -0.1)], 0.5); rs.add([(10, 0.2), (20, 0.1)], 0.5)
>>> rs.points()
([10, 20, 30], [0.1, 0.1, -0.05])
>>> np.round(rs.equity(), 6).tolist()
[1.1, 1.21, 1.1495]
"""

from __future__ import annotations

import bisect
import math
from typing import Any, Literal

import numpy as np

from dataflows.metrics import MetricSet
from qmtl.core.intervals import INTERVALS, interval_ns
from qmtl.core.intervals import annualization as data_annualization
from world_api.domain.strategy_state import StrategyState, compound_onto, spacing

SUMMARY = ("sharpe", "total_return", "max_drawdown")
"""The world metrics a submission reports before and after (see ``SubmitResult``)."""


def annualization(ts: np.ndarray) -> float:
    """Periods per year of a world return series, from its own times as a backtest's are
    (:func:`qmtl.core.intervals.annualization`): ``(bars - 1) / years`` between its first and
    last time; with fewer than two times, the convention of the bar interval nearest to the
    median spacing (252 for daily).

    Daily returns every day of the week are 365 a year (the demo catalog's), weekdays about
    261, and a single point falls back to 252:

    >>> day = 86_400 * 10**9
    >>> annualization(np.arange(366) * day), annualization(np.array([0]))
    (365.0, 252.0)
    >>> round(annualization(np.array([d for d in range(3654) if (d + 3) % 7 < 5]) * day), 1)
    260.7
    """
    gap = spacing(ts)
    if gap <= 0:
        return 252.0
    nearest = min(INTERVALS, key=lambda i: abs(math.log(gap / interval_ns(i))))
    return data_annualization(nearest, ts).periods_per_year


def series_metrics(ts: np.ndarray, r: np.ndarray) -> dict[str, float]:
    """The backtest metrics (:class:`dataflows.metrics.MetricSet`, finite values) of a return
    series, annualized by :func:`annualization`.

    >>> m = series_metrics(np.arange(3), np.array([0.1, -0.1, 0.1]))
    >>> round(m["total_return"], 4), m["n_bars"]
    (0.089, 3.0)
    """
    return MetricSet(annualization(ts)).update(r).finite()


def with_equity(
    ts: np.ndarray, r: np.ndarray, after: int | None = None, limit: int | None = None
) -> list[dict[str, float]]:
    """``[{"ts", "return", "equity"}]`` of the points after ``after`` (at most ``limit``),
    the equity compounded from the series' first point (1.0 before it).

    >>> with_equity(np.array([1, 2]), np.array([0.5, -0.5]), after=1)
    [{'ts': 2, 'return': -0.5, 'equity': 0.75}]
    """
    eq = np.cumprod(1.0 + r)
    lo = 0 if after is None else int(np.searchsorted(ts, after, side="right"))
    hi = len(ts) if limit is None else min(len(ts), lo + limit)
    return [
        {"ts": int(t), "return": float(x), "equity": float(e)}
        for t, x, e in zip(ts[lo:hi].tolist(), r[lo:hi].tolist(), eq[lo:hi].tolist(), strict=True)
    ]


class ReturnSeries:
    """The realized world return: one point per time, contributions summed into it (see the
    module docstring). ``dirty`` holds the times changed since the store last saved them;
    ``version`` counts changes (caches of equity and metrics key on it). ``source`` is
    ``"book"`` once the world's book reports, and ``reset`` says the stored points summed
    from records are to be dropped (set when the book's first points replace them)."""

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.r: list[float] = []
        self.dirty: set[int] = set()
        self.version = 0
        self.source: Literal["records", "book"] = "records"
        self.reset = False
        self._cache: tuple[int, np.ndarray, np.ndarray, dict[str, float]] | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def load(self, points: list[tuple[int, float]], source: str = "records") -> None:
        """Replace the series with stored points (times increasing) from ``source``.

        >>> rs = ReturnSeries(); rs.load([(1, 0.5)], "book"); rs.points(), rs.source
        (([1], [0.5]), 'book')
        """
        if source not in ("records", "book"):
            raise ValueError(f"realized source {source!r}: not 'records' or 'book'")
        self.ts = [int(t) for t, _ in points]
        self.r = [float(x) for _, x in points]
        self.source = "book" if source == "book" else "records"
        self.dirty.clear()
        self.version += 1

    def book(self, points: list[tuple[int, float]]) -> int:
        """The world's book reports its marked-to-market return ``(ts, r)`` per bar: the
        series becomes the book's (the first time, the points summed from records are
        dropped); a point at a time the book has reported already is ignored (a re-sent
        one). Returns how many points were new. A return that is not finite or is at
        most -1 raises ValueError naming it, with nothing changed.

        >>> rs = ReturnSeries(); rs.add([(1, 0.5)], 1.0)
        >>> rs.book([(2, 0.01), (3, -0.02)]), rs.book([(3, 0.9), (4, 0.03)])
        (2, 1)
        >>> rs.points(), rs.source
        (([2, 3, 4], [0.01, -0.02, 0.03]), 'book')
        """
        for i, (_, x) in enumerate(points):
            if not math.isfinite(x) or x <= -1.0:
                raise ValueError(f"[{i}].return: {x!r} is not a finite return above -1")
        if self.source != "book":
            self.ts, self.r, self.source, self.reset = [], [], "book", True
            self.dirty.clear()
            self.version += 1
        new = 0
        for t, x in points:
            i = bisect.bisect_left(self.ts, t)
            if i < len(self.ts) and self.ts[i] == t:
                continue
            self.ts.insert(i, int(t))
            self.r.insert(i, float(x))
            self.dirty.add(int(t))
            new += 1
        if new:
            self.version += 1
        return new

    def add(self, pairs: list[tuple[int, float]], weight: float) -> None:
        """Add ``weight * r`` to the point at each ``(ts, r)`` (inserting missing points).

        >>> rs = ReturnSeries(); rs.add([(1, 0.5)], 0.0); len(rs)
        0
        """
        if weight == 0.0 or not pairs:
            return
        ts, r = self.ts, self.r
        for t, x in pairs:
            v = weight * x
            if not ts or t > ts[-1]:
                ts.append(t)
                r.append(v)
            elif t == ts[-1]:
                r[-1] += v
            else:
                i = bisect.bisect_left(ts, t)
                if ts[i] == t:
                    r[i] += v
                else:
                    ts.insert(i, t)
                    r.insert(i, v)
            self.dirty.add(t)
        self.version += 1

    def points(self) -> tuple[list[int], list[float]]:
        """``(times, returns)``."""
        return list(self.ts), list(self.r)

    def dirty_points(self) -> list[tuple[int, float]]:
        """``(ts, r)`` of the points changed since the store last saved them, by time.

        >>> rs = ReturnSeries(); rs.add([(1, 0.5), (2, 0.25)], 1.0); rs.dirty.discard(1)
        >>> rs.dirty_points()
        [(2, 0.25)]
        """
        return [(t, self.r[bisect.bisect_left(self.ts, t)]) for t in sorted(self.dirty)]

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        if self._cache is None or self._cache[0] != self.version:
            ts = np.asarray(self.ts, dtype=np.int64)
            r = np.asarray(self.r, dtype=np.float64)
            self._cache = (self.version, ts, r, series_metrics(ts, r))
        return self._cache[1], self._cache[2], self._cache[3]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ts int64, r float64)`` arrays (cached until the next change)."""
        ts, r, _ = self._arrays()
        return ts, r

    def equity(self) -> np.ndarray:
        """The equity after each point, from 1.0."""
        return np.cumprod(1.0 + self.arrays()[1])

    def metrics(self) -> dict[str, float]:
        """The series' metrics (cached until the next change)."""
        return dict(self._arrays()[2])


def pro_forma(
    strategies: list[tuple[float, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray]:
    """``sum_s w_s * r_s(t)`` over the bars every ``(w, ts, r)`` given with ``w != 0`` shares
    (:func:`shared_times`); summed in the order given. A bar one of them has and another
    has not is left out: the pro forma compares strategies on the same bars only.

    >>> t, r = pro_forma([(0.5, np.array([1, 2, 3]), np.array([0.2, 0.4, 0.0])),
    ...                   (0.5, np.array([2, 3, 4]), np.array([0.2, 0.2, 0.1]))])
    >>> t.tolist(), r.round(6).tolist()
    ([2, 3], [0.3, 0.1])
    """
    parts = [(w, *_sorted(ts, r)) for w, ts, r in strategies if len(ts) and w != 0.0]
    times, aligned = shared_times([(ts, r) for _, ts, r in parts])
    total = np.zeros(len(times))
    for (w, _, _), x in zip(parts, aligned, strict=True):
        total = total + w * x
    return times, total


def _sorted(ts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ts, r = np.asarray(ts, dtype=np.int64), np.asarray(r, dtype=np.float64)
    if len(ts) > 1 and bool((np.diff(ts) < 0).any()):
        order = np.argsort(ts, kind="stable")
        ts, r = ts[order], r[order]
    return ts, r


def shared_times(
    series: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The bars every one of ``series`` (``(ts, r)``, times sorted and unique) shares, and
    each one's return on them: ``(times, [r_s at times])``.

    Series of one interval (:func:`~world_api.domain.strategy_state.spacing`, the median
    gap) share the times all of them hold. When the intervals differ, the bars are the
    coarsest interval's: the times all the coarsest series hold, a finer series' returns
    compounded into each such bar it covers (:func:`compound_onto`, as the correlation of
    two strategies aligns them), so a bar is shared when every series has its return for
    it. A single-point series (interval unknown) shares its own time only.

    >>> daily = (np.array([24, 48, 72]), np.array([0.01, 0.02, 0.03]))
    >>> hourly = (np.arange(24, 73), np.full(49, 0.001))  # from 24 on: covers (24, 48]
    >>> t, (d, h) = shared_times([daily, hourly])
    >>> t.tolist(), d.tolist(), round(float(h[0]), 6)   # (0, 24] is before it
    ([48, 72], [0.02, 0.03], 0.024278)
    """
    if not series:
        return np.empty(0, dtype=np.int64), []
    gaps = [spacing(ts) for ts, _ in series]
    coarse = max(gaps)
    grid: np.ndarray | None = None
    for (ts, _), g in zip(series, gaps, strict=True):
        if g == coarse or g == 0:
            grid = ts if grid is None else np.intersect1d(grid, ts, assume_unique=True)
    assert grid is not None  # the coarsest series is one of them
    moved: list[tuple[np.ndarray, np.ndarray]] = []
    for (ts, r), g in zip(series, gaps, strict=True):
        moved.append((ts, r) if g == coarse or g == 0 else compound_onto(grid, ts, r))
        grid = np.intersect1d(grid, moved[-1][0], assume_unique=True)
    return grid, [r[np.searchsorted(ts, grid)] for ts, r in moved]


MIN_PRO_FORMA_OVERLAP = 0.5
"""Below this share of their span on which every active strategy has returns, the pro forma
return comes with a warning: it stands on a small part of the strategies' histories."""


def overlap_share(spans: list[tuple[int, int]]) -> float | None:
    """The share of the union of ``(first, last)`` time spans that all of them cover: the
    length of their intersection over that of their union (1.0 for one span, or spans that
    are single instants at one time; None for none).

    >>> overlap_share([(0, 10), (5, 20)]), overlap_share([(0, 10), (20, 30)])
    (0.25, 0.0)
    """
    if not spans:
        return None
    lo, hi = max(a for a, _ in spans), min(b for _, b in spans)
    start, end = min(a for a, _ in spans), max(b for _, b in spans)
    if end == start:
        return 1.0
    return max(0, hi - lo) / (end - start)


def overlap_warnings(
    spans: list[tuple[int, int]], shared: int = 0, threshold: float = MIN_PRO_FORMA_OVERLAP
) -> list[str]:
    """A warning when the spans' :func:`overlap_share` is below ``threshold`` (times in
    ns, shown as UTC dates), naming the ``shared`` bars the pro forma stands on.

    >>> day = 86_400 * 10**9
    >>> print(overlap_warnings([(0, 10 * day), (20 * day, 30 * day)])[0])
    the active strategies' returns overlap on 0% of their span (1970-01-01 to ...): the pro ...
    >>> overlap_warnings([(0, 10 * day), (0, 9 * day)])
    []
    """
    share = overlap_share(spans)
    if share is None or share >= threshold:
        return []
    start = min(a for a, _ in spans)
    end = max(b for _, b in spans)
    return [
        f"the active strategies' returns overlap on {share:.0%} of their span "
        f"({_date(start)} to {_date(end)}): the pro forma uses only the {shared} bars "
        "they share"
    ]


def _date(ns: int) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


class ProForma:
    """The pro forma series of a set of strategies and weights, recomputed only when the
    weights or an active strategy's kept returns changed."""

    def __init__(self) -> None:
        self.key: tuple[Any, ...] = ()
        self._value: tuple[np.ndarray, np.ndarray, dict[str, float]] | None = None

    def get(self, active: list[StrategyState]) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """``(ts, r, metrics)`` for the ``active`` strategies (in a stable order) at their
        current weights.

        >>> s = StrategyState("a"); _ = s.extend([(1, 0.1), (2, 0.1)]); s.weight = 1.0
        >>> ProForma().get([s])[1].tolist()
        [0.1, 0.1]
        """
        key = tuple((s.sid, s.weight, s.total_returns) for s in active)
        if self._value is None or key != self.key:
            ts, r = pro_forma([(s.weight, *s.arrays()) for s in active])
            self._value = (ts, r, series_metrics(ts, r))
            self.key = key
        return self._value


def summary(metrics: dict[str, float]) -> dict[str, float]:
    """The :data:`SUMMARY` metrics of a metrics dict (0.0 for a missing one).

    >>> summary({"sharpe": 1.5, "n_bars": 3.0})
    {'sharpe': 1.5, 'total_return': 0.0, 'max_drawdown': 0.0}
    """
    return {k: float(metrics.get(k, 0.0)) for k in SUMMARY}


def world_change(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{"before", "after", "change"}`` (after - before) of the :data:`SUMMARY` pro forma
    metrics of two ``WorldEngine.world_metrics()`` answers.

    >>> m = lambda s: {"pro_forma": {"n_bars": 9, "metrics": {"sharpe": s}}}
    >>> world_change(m(1.0), m(0.5))["change"]
    {'sharpe': -0.5, 'total_return': 0.0, 'max_drawdown': 0.0}
    """
    b = summary(before["pro_forma"]["metrics"])
    a = summary(after["pro_forma"]["metrics"])
    return {"before": b, "after": a, "change": {k: a[k] - b[k] for k in a}}


def contribution(s: StrategyState, active: list[StrategyState]) -> float:
    """``s``'s share of the world's mean return, ``W_s * mean(r_s)`` over the sum of it
    across the ``active`` strategies (0 when ``s`` is not active or the total is 0).

    >>> a, b = StrategyState("a"), StrategyState("b")
    >>> _ = a.extend([(1, 0.02)]); _ = b.extend([(1, 0.01)])
    >>> a.active = b.active = True; a.weight = b.weight = 0.5
    >>> round(contribution(a, [a, b]), 6)
    0.666667
    """
    if not s.active:
        return 0.0
    # fsum is exactly rounded, so the total does not depend on the order of the active set
    # (which differs between a live engine and one rebuilt from its state)
    total = math.fsum(x.weight * x.mean_return() for x in active)
    if total == 0 or not math.isfinite(total):
        return 0.0
    return s.weight * s.mean_return() / total


def pro_forma_report(
    active: list[StrategyState], ts: np.ndarray, r: np.ndarray, metrics: dict[str, float]
) -> dict[str, Any]:
    """``{"n_bars", "metrics", "overlap", "shared_bars", "first_shared", "last_shared",
    "warnings"}`` of the pro forma return ``(ts, r)`` (with its ``metrics``) of the
    ``active`` strategies: it stands on the bars they share (:func:`pro_forma`), so
    ``shared_bars`` is its length and ``first_shared``/``last_shared`` its first and last
    time (None: none shared, or no active strategy); :func:`overlap_share` of their kept
    returns' spans and :func:`overlap_warnings`.

    >>> s = StrategyState("a"); _ = s.extend([(1, 0.1), (2, 0.1)]); s.weight = 1.0
    >>> rep = pro_forma_report([s], np.array([1, 2]), np.array([0.1, 0.1]), {})
    >>> rep["overlap"], rep["shared_bars"], rep["first_shared"], rep["last_shared"]
    (1.0, 2, 1, 2)
    """
    held = [s for s in active if s.ts and s.weight != 0.0]
    spans = [(int(s.ts[0]), int(s.ts[-1])) for s in held]
    some = bool(held) and len(ts) > 0
    return {
        "n_bars": len(r),
        "metrics": dict(metrics),
        "overlap": overlap_share(spans),
        "shared_bars": len(ts) if held else None,
        "first_shared": int(ts[0]) if some else None,
        "last_shared": int(ts[-1]) if some else None,
        "warnings": overlap_warnings(spans, len(ts)),
    }
