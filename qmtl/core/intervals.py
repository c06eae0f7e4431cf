"""Bar intervals: parsing, length in nanoseconds and annualization.

>>> interval_ns("5m")
300000000000
>>> periods_per_year("1d"), periods_per_year("1h")
(252.0, 8760.0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

NS_PER_SECOND = 1_000_000_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
INTERVALS: tuple[str, ...] = ("1m", "5m", "15m", "1h", "4h", "1d")
"""The bar intervals the catalog and strategies support."""

_YEAR_SECONDS = 365 * 86400


def interval_seconds(interval: str) -> int:
    """Length of ``interval`` ("1m", "4h", "1d", ...) in seconds.

    >>> interval_seconds("15m")
    900
    >>> interval_seconds("2x")
    Traceback (most recent call last):
    ...
    ValueError: unknown interval '2x': use one of 1m, 5m, 15m, 1h, 4h, 1d
    """
    unit = interval[-1:]
    count = interval[:-1]
    if unit not in _UNITS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    return int(count) * _UNITS[unit]


def interval_ns(interval: str) -> int:
    """Length of ``interval`` in nanoseconds.

    >>> interval_ns("1s")
    1000000000
    """
    return interval_seconds(interval) * NS_PER_SECOND


def periods_per_year(interval: str) -> float:
    """Annualization factor: 252 trading days for ``1d``; calendar time otherwise.

    >>> periods_per_year("1m")
    525600.0
    """
    if interval == "1d":
        return 252.0
    return _YEAR_SECONDS / interval_seconds(interval)


YEAR_NS = _YEAR_SECONDS * NS_PER_SECOND
"""A year of 365 days, in nanoseconds: the year the data's own spacing is measured in (the
same as the intraday convention, so bars at every step of the interval measure exactly it)."""


@dataclass(frozen=True)
class Annualization:
    """Periods per year and how they were found (see :func:`annualization`).

    >>> Annualization(252.0, "interval", "252 for 1d").settings()["source"]
    'interval'
    """

    periods_per_year: float
    source: str
    """``override`` (given), ``calendar`` (the symbols' calendar), ``bars`` (the bars' own
    spacing) or ``interval`` (the interval's convention: too few bars to measure)."""
    detail: str

    def settings(self) -> dict[str, float | str]:
        """As JSON-able data (``metrics.json``'s ``settings.annualization``)."""
        return {"periods_per_year": self.periods_per_year, "source": self.source,
                "detail": self.detail}


class _Calendar(Protocol):
    def expected(self, first: int, last: int, step: int) -> Any: ...

    def describe(self) -> str: ...


def annualization(
    interval: str,
    ts: Any = None,
    *,
    calendar: _Calendar | None = None,
    override: float | None = None,
) -> Annualization:
    """Periods per year of a run over bars at times ``ts`` (int64 ns; any order, repeats
    counted once), found in this order:

    1. ``override`` (``--periods-per-year``) when given;
    2. the ``calendar`` of the symbols when one is set: the bars it expects between the first
       and the last time, ``(expected - 1) / years``;
    3. the bars' own spacing: ``(bars - 1) / years``, with ``years`` the time between the
       first and the last bar in 365-day years;
    4. with fewer than two distinct times: the interval's convention
       (:func:`periods_per_year`).

    Daily bars every day of the week are 365 a year; weekday bars without holidays about
    365 x 5 / 7:

    >>> day = 86_400 * 10**9
    >>> a = annualization("1d", np.arange(2520) * day)
    >>> round(a.periods_per_year, 6), a.source, a.detail
    (365.0, 'bars', '2520 bars over 6.90 years')
    >>> class Weekdays:                       # a calendar: Mon-Fri (2024-07-01 was a Monday)
    ...     def expected(self, first, last, step):
    ...         days = np.arange(first // day, last // day + 1)
    ...         return days[(days + 3) % 7 < 5] * day
    ...     def describe(self):
    ...         return "weekdays"
    >>> t = (19_905 + np.array([0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 14])) * day   # 3 weeks of bars
    >>> a = annualization("1d", t, calendar=Weekdays())
    >>> round(a.periods_per_year, 4), a.source      # 10 / (14 / 365) = 260.7143
    (260.7143, 'calendar')
    >>> annualization("1d", np.arange(5) * day, override=252).settings()["source"]
    'override'
    >>> annualization("1h", np.array([7])).periods_per_year
    8760.0
    """
    if override is not None:
        ppy = float(override)
        if not (math.isfinite(ppy) and ppy > 0):
            raise ValueError(f"periods per year must be a finite number > 0, got {override}")
        return Annualization(ppy, "override", "--periods-per-year")
    times = np.unique(np.asarray(ts, dtype=np.int64)) if ts is not None else np.empty(0)
    if len(times) >= 2:
        return span_annualization(interval, len(times), int(times[0]), int(times[-1]),
                                  calendar)
    return span_annualization(interval, len(times), 0, 0, calendar)


def span_annualization(
    interval: str, n: int, first: int, last: int, calendar: _Calendar | None = None
) -> Annualization:
    """:func:`annualization` of ``n`` distinct bar times from ``first`` to ``last`` (what a
    streaming run knows of its timeline so far).

    >>> day = 86_400 * 10**9
    >>> span_annualization("1d", 8, 0, 7 * day).detail
    '8 bars over 0.02 years'
    """
    if n >= 2 and last > first:
        years = (last - first) / YEAR_NS
        if calendar is not None:
            step = interval_ns(interval)
            if getattr(calendar, "kind", None) == "24/7":  # every bar of the interval
                expected = (last - first) // step + 1
            else:
                expected = len(calendar.expected(first, last, step))
            if expected >= 2:
                return Annualization((expected - 1) / years, "calendar",
                                     f"{calendar.describe()}: {expected} bars expected over "
                                     f"{years:.2f} years")
        return Annualization((n - 1) / years, "bars", f"{n} bars over {years:.2f} years")
    return Annualization(periods_per_year(interval), "interval",
                         f"fewer than two bars: the {interval} convention")
