"""Trading calendars: when a market expects bars, so that a closed market is not a gap.

A :class:`Calendar` is one of

- ``24/7`` (also ``crypto``): every bar of the interval;
- ``fx`` (24x5): the FX week, Sunday 17:00 to Friday 17:00 New York time, every bar of it
  (daily bars: Monday to Friday);
- ``weekdays``: Monday to Friday, optionally with session hours in a time zone and a list of
  holidays given by hand;
- an exchange, by its ISO MIC code (``XNYS``, ``XLON``, ``XTKS``, ``XHKG``, ...): its sessions,
  holidays, early closes and lunch breaks, from the ``exchange_calendars`` package (the
  ``calendars`` extra: ``pip install 'qmtl[calendars]'``). Its aliases (``NYSE``, ``NASDAQ``,
  ``LSE``, ...) name the same calendars; :func:`exchange_names` lists the codes;
- ``auto``: ``weekdays`` when the data has no weekend bar, else ``24/7``.

For ``1d`` bars a day is the UTC date of the bar's time (a CSV of dates is read as midnight
UTC of each date); intraday bars are expected at ``open + k * interval`` up to each session's
close (24 h when a ``weekdays`` calendar has no session hours).

>>> day = 86_400 * 10**9
>>> july = Calendar.parse("weekdays", holidays=["2024-07-04"])
>>> first, last = 19_905 * day, 19_911 * day          # Mon 2024-07-01 .. Sun 2024-07-07
>>> [int(t // day) - 19_905 for t in july.expected(first, last, day)]
[0, 1, 2, 4]
"""

from __future__ import annotations

import datetime as dt
import functools
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from qmtl.core.errors import QmtlError

DAY = 86_400 * 10**9
BUILT_IN = ("auto", "24/7", "weekdays", "fx")
ALIASES = {"crypto": "24/7", "24x7": "24/7", "24x5": "fx", "forex": "fx"}
"""Other names of the built-in calendars."""
FX_ZONE, FX_CUT = "America/New_York", dt.time(17)
"""Where and when the FX day ends (and the next begins): 17:00 New York."""
"""The calendars QMTL has without the ``calendars`` extra."""
EPOCH = dt.date(1970, 1, 1)


class CalendarError(QmtlError, ValueError):
    """A calendar that cannot be used as given (unknown name, bad session hours or zone).

    >>> str(CalendarError("unknown calendar 'lunar'"))
    "unknown calendar 'lunar'"
    """


def _exchange_calendars():  # -> the exchange_calendars module (an optional extra)
    try:
        import exchange_calendars
    except ImportError:
        raise CalendarError(
            "exchange calendars need the exchange_calendars package: "
            "pip install 'qmtl[calendars]' (or use 24/7, weekdays or auto)"
        ) from None
    return exchange_calendars


def exchange_names(aliases: bool = False) -> list[str]:
    """The exchange calendars there are: ISO MIC codes (with ``aliases``: also the other
    names that select one of them, e.g. ``NYSE``), sorted.

    >>> names = exchange_names()
    >>> "XNYS" in names and "XLON" in names and "NYSE" not in names
    True
    >>> "NYSE" in exchange_names(aliases=True)
    True
    """
    xcals = _exchange_calendars()
    return sorted(n for n in xcals.get_calendar_names(include_aliases=aliases) if n not in BUILT_IN)


def _exchange_name(text: str) -> str:
    """The exchange calendar ``text`` names (case-insensitive; aliases resolved)."""
    xcals = _exchange_calendars()
    known = {n.upper(): n for n in exchange_names(aliases=True)}
    name = known.get(text.strip().upper())
    if name is None:
        raise CalendarError(
            f"unknown calendar {text!r}: use {', '.join(BUILT_IN)} or an exchange: "
            f"{', '.join(exchange_names())} (aliases such as NYSE, NASDAQ, LSE, JPX work too)"
        )
    return str(xcals.resolve_alias(name))


@dataclass(frozen=True)
class Schedule:
    """An exchange's sessions over whole years, as int64 arrays: the session's UTC date (days
    since 1970-01-01) and its open, lunch break start and end (-1 when none) and close (ns).

    >>> s = exchange_schedule("XHKG", 2024, 2024)
    >>> int(s.break_end[0] - s.break_start[0]) // 60_000_000_000  # minutes of lunch
    60
    """

    day: np.ndarray
    open: np.ndarray
    break_start: np.ndarray
    break_end: np.ndarray
    close: np.ndarray


def _ns(column: Any) -> np.ndarray:
    """A pandas column of UTC times as int64 ns since the epoch (NaT -> -1), whatever unit
    pandas holds them in."""
    naive = column.dt.tz_convert("UTC").dt.tz_localize(None)
    values = naive.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return np.where(values == np.iinfo(np.int64).min, -1, values)


@functools.lru_cache(maxsize=16)
def exchange_schedule(name: str, first_year: int, last_year: int) -> Schedule:
    """The sessions of exchange calendar ``name`` from 1 January ``first_year`` to
    31 December ``last_year`` (building a calendar takes about a second: kept per range).

    >>> s = exchange_schedule("XNYS", 2024, 2024)
    >>> len(s.day), dt.date(2024, 7, 4) in {EPOCH + dt.timedelta(days=int(d)) for d in s.day}
    (252, False)
    """
    xcals = _exchange_calendars()
    with warnings.catch_warnings():  # the package's own uses of pandas, not the user's
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = xcals.get_calendar(name, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    sched = cal.schedule
    labels = np.asarray(sched.index.values.astype("datetime64[D]").astype(np.int64))
    return Schedule(
        day=labels,
        open=_ns(sched["open"]),
        break_start=_ns(sched["break_start"]),
        break_end=_ns(sched["break_end"]),
        close=_ns(sched["close"]),
    )


def _date(ns: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(ns // DAY))


@dataclass(frozen=True)
class Calendar:
    """When bars are expected: ``kind`` is ``auto``, ``24/7``, ``weekdays`` or an exchange's
    code (``XNYS``); ``session`` is local ``(open, close)`` times of a ``weekdays`` calendar
    (bars stamped after open up to close); ``tz`` its IANA zone; ``holidays`` days with no
    session (added to an exchange's own).

    >>> Calendar.parse("weekdays", session="09:30-16:00", tz="America/New_York").session
    (datetime.time(9, 30), datetime.time(16, 0))
    >>> Calendar.parse("nyse").kind
    'XNYS'
    """

    kind: str = "auto"
    session: tuple[dt.time, dt.time] | None = None
    tz: str = "UTC"
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    inferred: bool = False

    @property
    def exchange(self) -> bool:
        """Whether the calendar is an exchange's (from ``exchange_calendars``).

        >>> Calendar.parse("XLON").exchange, Calendar.parse("24/7").exchange
        (True, False)
        """
        return self.kind not in BUILT_IN

    @classmethod
    def parse(
        cls,
        kind: str = "auto",
        session: str | None = None,
        tz: str = "UTC",
        holidays: Iterable[str | dt.date] = (),
    ) -> Calendar:
        """From CLI-style text: ``24/7``, ``weekdays``, ``auto`` or an exchange code;
        ``HH:MM-HH:MM``; a zone; ISO dates.

        >>> Calendar.parse("XTKS", holidays=["2024-01-02"]).describe()
        'XTKS, 1 holidays'
        >>> Calendar.parse("XNYS", session="09:30-12:00")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        connectors.data.calendars.CalendarError: calendar XNYS has its own session hours ...
        """
        name = kind.strip()
        name = ALIASES.get(name.lower(), name.lower())
        name = name if name in BUILT_IN else _exchange_name(kind.strip())
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(
                f"unknown time zone {tz!r} (an IANA name, e.g. America/New_York)"
            ) from None
        if name not in ("auto", "24/7", "weekdays") and (session or tz != "UTC"):
            raise CalendarError(
                f"calendar {name} has its own session hours and time zone: --session and "
                "--tz go with the weekdays calendar"
            )
        hours = None
        if session:
            try:
                a, b = (dt.time.fromisoformat(x.strip()) for x in session.split("-"))
            except ValueError:
                raise CalendarError(
                    f"session {session!r}: use HH:MM-HH:MM, e.g. 09:30-16:00"
                ) from None
            if b <= a:
                raise CalendarError(f"session {session!r}: the close must be after the open")
            hours = (a, b)
        days = []
        for d in holidays:
            try:
                days.append(d if isinstance(d, dt.date) else dt.date.fromisoformat(d.strip()))
            except ValueError:
                raise CalendarError(f"holiday {d!r}: use an ISO date, e.g. 2024-07-04") from None
        return cls(name, hours, tz, frozenset(days))

    def resolve(self, ts: np.ndarray) -> Calendar:
        """``auto`` made concrete for these bars: weekdays when no bar falls on a weekend.

        >>> Calendar().resolve(np.arange(7) * DAY).describe()
        '24/7 (inferred)'
        """
        if self.kind != "auto":
            return self
        weekday = ((np.asarray(ts) // DAY) + 3) % 7  # 1970-01-01 was a Thursday (Mon = 0)
        kind = "weekdays" if len(ts) >= 5 and not np.any(weekday >= 5) else "24/7"
        return Calendar(kind, self.session, self.tz, self.holidays, inferred=True)

    def describe(self) -> str:
        """Human text.

        >>> Calendar.parse("24/7").describe()
        '24/7'
        """
        text = self.kind
        if self.session:
            text += f" {self.session[0]:%H:%M}-{self.session[1]:%H:%M} {self.tz}"
        if self.holidays:
            text += f", {len(self.holidays)} holidays"
        return text + (" (inferred)" if self.inferred else "")

    def expected(self, first: int, last: int, step: int) -> np.ndarray:
        """Bar times the calendar expects in ``[first, last]`` (not for ``24/7``, where every
        bar is; a daily bar keeps the time of day of ``first``).

        >>> h = 3_600 * 10**9
        >>> t0 = 19_907 * DAY                              # 2024-07-03, an early close
        >>> [(int(t - t0) // h) for t in Calendar.parse("XNYS").expected(t0, t0 + DAY, h)]
        [14, 15, 16]
        """
        if self.exchange:
            return self._exchange_expected(first, last, step)
        if self.kind == "fx" and step < DAY:
            return self._fx_expected(first, last, step)
        if step >= DAY:
            days = np.arange(first // DAY, last // DAY + 1, dtype=np.int64)
            days = days[(days + 3) % 7 < 5]
            return self._without_holidays(days) * DAY + first % DAY
        zone = ZoneInfo(self.tz)
        open_t, close_t = self.session or (dt.time(0), None)
        local0 = dt.datetime.fromtimestamp(first // 10**9, zone).date() - dt.timedelta(days=1)
        local1 = dt.datetime.fromtimestamp(last // 10**9, zone).date() + dt.timedelta(days=1)
        out = []
        day = local0
        while day <= local1:
            if day.weekday() < 5 and day not in self.holidays:
                start = dt.datetime.combine(day, open_t, zone)
                stop = (
                    dt.datetime.combine(day, close_t, zone)
                    if close_t
                    else dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone)
                )
                a = int(start.timestamp()) * 10**9
                b = int(stop.timestamp()) * 10**9
                out.append(np.arange(a + step, b + 1, step, dtype=np.int64))
            day += dt.timedelta(days=1)
        return _within(out, first, last)

    def _fx_expected(self, first: int, last: int, step: int) -> np.ndarray:
        """Intraday bars of the FX week: each weekday's session runs from 17:00 New York of
        the day before to 17:00 of the day (Sunday 17:00 to Friday 17:00), holidays off.

        >>> h = 3_600 * 10**9
        >>> fri = 19_909 * DAY                             # Friday 2024-07-05, 00:00 UTC
        >>> got = Calendar.parse("fx").expected(fri, fri + 3 * DAY, h)  # to Monday 00:00
        >>> [int(t - fri) // h for t in got]  # Friday to 21:00 UTC, from Sunday 21:00 UTC
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 70, 71, 72]
        """
        zone = ZoneInfo(FX_ZONE)
        local0 = dt.datetime.fromtimestamp(first // 10**9, zone).date() - dt.timedelta(days=1)
        local1 = dt.datetime.fromtimestamp(last // 10**9, zone).date() + dt.timedelta(days=1)
        out = []
        day = local0
        while day <= local1:
            if day.weekday() < 5 and day not in self.holidays:
                a = dt.datetime.combine(day - dt.timedelta(days=1), FX_CUT, zone)
                b = dt.datetime.combine(day, FX_CUT, zone)
                out.append(
                    np.arange(
                        int(a.timestamp()) * 10**9 + step,
                        int(b.timestamp()) * 10**9 + 1,
                        step,
                        dtype=np.int64,
                    )
                )
            day += dt.timedelta(days=1)
        return _within(out, first, last)

    def _without_holidays(self, days: np.ndarray) -> np.ndarray:
        """``days`` (since the epoch) less the calendar's own holidays."""
        if not self.holidays:
            return days
        off = np.array([(d - EPOCH).days for d in self.holidays], dtype=np.int64)
        return days[~np.isin(days, off)]

    def _exchange_expected(self, first: int, last: int, step: int) -> np.ndarray:
        # a session may open on the UTC day before its date: a margin of two days
        s = exchange_schedule(self.kind, _date(first - 2 * DAY).year, _date(last + 2 * DAY).year)
        if step >= DAY:
            days = s.day[(s.day >= first // DAY) & (s.day <= last // DAY)]
            return self._without_holidays(days) * DAY + first % DAY
        pick = (s.close >= first) & (s.open <= last) & np.isin(s.day, self._without_holidays(s.day))
        out = []
        for i in np.flatnonzero(pick):
            a, z = int(s.open[i]), int(s.close[i])
            if s.break_start[i] >= 0:
                out.append(np.arange(a + step, int(s.break_start[i]) + 1, step, dtype=np.int64))
                a = int(s.break_end[i])
            out.append(np.arange(a + step, z + 1, step, dtype=np.int64))
        return _within(out, first, last)


def _within(parts: list[np.ndarray], first: int, last: int) -> np.ndarray:
    grid = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
    return grid[(grid >= first) & (grid <= last)]
