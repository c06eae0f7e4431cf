"""Calendars against the exchanges' own published schedules: an exchange's holidays, early
closes and lunch breaks are not gaps; a missing session is."""

from __future__ import annotations

import datetime as dt
import sys
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from connectors.data.calendars import Calendar, CalendarError, exchange_names
from connectors.data.quality import find_gaps
from qmtl.core.errors import QmtlError

pytest.importorskip("exchange_calendars")

NY = ZoneInfo("America/New_York")
# NYSE's published 2024 holidays and early closes (13:00), nyse.com/markets/hours-calendars
NYSE_2024_HOLIDAYS = ["2024-01-01", "2024-01-15", "2024-02-19", "2024-03-29", "2024-05-27",
                      "2024-06-19", "2024-07-04", "2024-09-02", "2024-11-28", "2024-12-25"]
NYSE_2024_EARLY = {dt.date(2024, 7, 3), dt.date(2024, 11, 29), dt.date(2024, 12, 24)}
DAY = 86_400 * 10**9
MINUTE = 60 * 10**9


def days(first: str, last: str) -> list[dt.date]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [a + dt.timedelta(days=k) for k in range((b - a).days + 1)]


def midnight(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days * DAY


def session_bars(day: dt.date, parts: list[tuple[str, str]], zone: ZoneInfo,
                 step: int) -> list[int]:
    """Bar close times of ``day``'s session parts (local HH:MM open/close), like a data vendor."""
    out = []
    for a, b in parts:
        start = dt.datetime.combine(day, dt.time.fromisoformat(a), zone).timestamp()
        stop = dt.datetime.combine(day, dt.time.fromisoformat(b), zone).timestamp()
        out += range(int(start) * 10**9 + step, int(stop) * 10**9 + 1, step)
    return out


def date_of(ns: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(ns) // DAY)


def nyse_2024_daily() -> np.ndarray:
    holidays = {dt.date.fromisoformat(d) for d in NYSE_2024_HOLIDAYS}
    return np.array([midnight(d) for d in days("2024-01-01", "2024-12-31")
                     if d.weekday() < 5 and d not in holidays], dtype=np.int64)


def test_nyse_2024_sessions_are_the_published_ones():
    ts = nyse_2024_daily()
    assert len(ts) == 252  # NYSE's 2024 trading days
    xnys = Calendar.parse("XNYS")
    assert find_gaps(ts, "1d", xnys) == []
    weekdays = find_gaps(ts, "1d", Calendar.parse("weekdays"))
    assert sorted(date_of(g.ts).isoformat() for g in weekdays) == \
        NYSE_2024_HOLIDAYS[1:]  # 1 January is before the first bar
    # a session that is missing is a gap, named by its date
    holed = np.delete(ts, [100, 101])
    gaps = find_gaps(holed, "1d", xnys)
    assert [(g.ts, g.count) for g in gaps] == [(int(ts[100]), 2)]
    assert "XNYS" in gaps[0].detail
    # the bars' time of day does not matter (stamped at the close, 21:00 UTC)
    assert find_gaps(ts + 21 * 3_600 * 10**9, "1d", xnys) == []


def test_nyse_early_closes_and_holidays_intraday():
    """1m bars of the week of 4 July 2024: an early close on the 3rd, a holiday on the 4th."""
    step = MINUTE
    stamps = []
    for d in days("2024-07-01", "2024-07-05"):
        if d == dt.date(2024, 7, 4):
            continue
        close = "13:00" if d in NYSE_2024_EARLY else "16:00"
        stamps += session_bars(d, [("09:30", close)], NY, step)
    ts = np.array(stamps, dtype=np.int64)
    assert len(ts) == 390 * 3 + 210
    assert find_gaps(ts, "1m", Calendar.parse("XNYS")) == []
    hours = Calendar.parse("weekdays", session="09:30-16:00", tz="America/New_York",
                           holidays=["2024-07-04"])
    afternoon = find_gaps(ts, "1m", hours)  # without the early close: 3 hours missing
    assert [(g.ts, g.count) for g in afternoon] == [
        (int(dt.datetime(2024, 7, 3, 13, 1, tzinfo=NY).timestamp()) * 10**9, 180)]
    holed = np.delete(ts, np.s_[400:430])
    assert [(g.ts, g.count) for g in find_gaps(holed, "1m", Calendar.parse("XNYS"))] == [
        (int(ts[400]), 30)]


def test_hong_kong_lunch_break():
    """HKEX trades 09:30-12:00 and 13:00-16:00: 66 five-minute bars a day, none at lunch."""
    hk = ZoneInfo("Asia/Hong_Kong")
    step = 5 * MINUTE
    stamps = []
    for d in days("2024-01-08", "2024-01-12"):
        stamps += session_bars(d, [("09:30", "12:00"), ("13:00", "16:00")], hk, step)
    ts = np.array(stamps, dtype=np.int64)
    assert len(ts) == 5 * 66
    cal = Calendar.parse("HKEX")
    assert cal.kind == "XHKG" and find_gaps(ts, "5m", cal) == []
    grid = cal.expected(int(ts[0]), int(ts[-1]), step)
    assert np.array_equal(grid, ts)
    assert len(find_gaps(ts, "5m", Calendar.parse("weekdays", session="09:30-16:00",
                                                 tz="Asia/Hong_Kong"))) == 5  # 5 lunches


def test_tokyo_new_year():
    """The Tokyo exchange is closed 1-3 January: bars from the 4th follow 29 December."""
    ts = np.array([midnight(dt.date(2023, 12, 28)), midnight(dt.date(2023, 12, 29)),
                   midnight(dt.date(2024, 1, 4)), midnight(dt.date(2024, 1, 5))])
    assert find_gaps(ts, "1d", Calendar.parse("XTKS")) == []
    assert sum(g.count for g in find_gaps(ts, "1d", Calendar.parse("weekdays"))) == 3


def test_extra_holidays_on_top_of_an_exchange():
    ts = np.delete(nyse_2024_daily(), 10)
    missing = date_of(nyse_2024_daily()[10])
    assert len(find_gaps(ts, "1d", Calendar.parse("XNYS"))) == 1
    assert find_gaps(ts, "1d", Calendar.parse("XNYS", holidays=[missing.isoformat()])) == []


def test_names_and_bad_input():
    assert {"XNYS", "XLON", "XTKS", "XHKG", "XETR", "XPAR"} <= set(exchange_names())
    assert Calendar.parse(" xlon ").kind == "XLON" and Calendar.parse("NASDAQ").kind == "XNYS"
    assert Calendar.parse("Weekdays").kind == "weekdays"
    with pytest.raises(CalendarError, match="unknown calendar 'lunar'") as err:
        Calendar.parse("lunar")
    assert "XNYS" in str(err.value) and "24/7" in str(err.value)
    assert isinstance(err.value, QmtlError) and isinstance(err.value, ValueError)
    with pytest.raises(CalendarError, match="HH:MM-HH:MM"):
        Calendar.parse("weekdays", session="9h-16h")
    with pytest.raises(CalendarError, match="close must be after the open"):
        Calendar.parse("weekdays", session="16:00-09:30")
    with pytest.raises(CalendarError, match="unknown time zone"):
        Calendar.parse("weekdays", tz="Mars/Olympus")
    with pytest.raises(CalendarError, match="has its own session hours"):
        Calendar.parse("XNYS", tz="Europe/London")
    with pytest.raises(CalendarError, match="holiday '4 July'"):
        Calendar.parse("weekdays", holidays=["4 July"])


def test_an_exchange_without_the_extra_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # as if not installed
    with pytest.raises(CalendarError, match=r"pip install 'qmtl\[calendars\]'"):
        Calendar.parse("XNYS")
    assert Calendar.parse("24/7").kind == "24/7"  # the built-in ones need nothing
