"""Time as the project keeps it: int64 nanoseconds since the epoch, UTC; ISO text at the edges.

>>> format_ts(parse_time("2024-01-03T09:30"))
'2024-01-03T09:30:00Z'
"""

from __future__ import annotations

import datetime as dt


def format_ts(ns: int) -> str:
    """ISO-8601 UTC text of a nanosecond timestamp.

    >>> format_ts(1704240000000000000)
    '2024-01-03T00:00:00Z'
    """
    seconds, rem = divmod(int(ns), 1_000_000_000)
    stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rem:09d}Z".replace(".000000000Z", "Z")


def parse_time(text: str) -> int:
    """Nanoseconds since the epoch of an ISO date or datetime (naive means UTC).

    >>> parse_time("2024-01-03")
    1704240000000000000
    >>> parse_time("2024-01-03T09:30:00+01:00") == parse_time("2024-01-03 08:30")
    True
    >>> parse_time("soon")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: cannot read 'soon' as a date or time: use ISO format, e.g. 2024-01-31 or ...
    """
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"cannot read {text!r} as a date or time: use ISO format, "
            "e.g. 2024-01-31 or 2024-01-31T09:30"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def time_bound(
    value: str | int | None, what: str, error: type[Exception] = ValueError
) -> int | None:
    """A ``start``/``end`` given as ISO text or ns, as ns (None stays None); a malformed text
    is an ``error`` naming ``what``.

    >>> time_bound("2024-01-02", "start"), time_bound(5, "end"), time_bound(None, "end")
    (1704153600000000000, 5, None)
    >>> time_bound("soon", "start")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: start: cannot read 'soon' as a date or time: ...
    """
    if value is None or isinstance(value, int):
        return value
    try:
        return parse_time(value)
    except ValueError as exc:
        raise error(f"{what}: {exc}") from None
