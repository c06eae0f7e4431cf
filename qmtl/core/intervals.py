"""Bar intervals: parsing, length in nanoseconds and annualization.

>>> interval_ns("5m")
300000000000
>>> periods_per_year("1d"), periods_per_year("1h")
(252.0, 8760.0)
"""

from __future__ import annotations

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
