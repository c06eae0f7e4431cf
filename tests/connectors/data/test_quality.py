"""Quality checks find every injected defect and nothing on clean data; repair fixes what it
can and the repaired copy checks clean but for gaps."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.data.calendars import Calendar
from connectors.data.quality import check_bars, find_gaps, repair
from connectors.data.synthetic import generate_bars
from qmtl.core.intervals import interval_ns

CLEAN = generate_bars(600, interval="1h", start="2024-01-01", seed=9)
H = interval_ns("1h")


def copy(bars):
    return {k: np.array(v, copy=True) for k, v in bars.items()}


@pytest.mark.parametrize("interval", ["1m", "1h", "1d"])
def test_clean_data_has_no_issue(interval):
    bars = generate_bars(2000, interval=interval, start="2023-06-01", seed=1)
    assert check_bars(bars, interval, Calendar.parse("24/7")) == []
    assert check_bars(bars, interval) == []  # auto: this data has weekends, so 24/7


DEFECTS = ["nan", "non_positive", "negative_volume", "high_low", "close_out", "open_out",
           "duplicate", "out_of_order", "gap"]


def inject(bars, kind, i):
    """Damage row ``i`` (away from the other damaged rows) in one way; return the issue kind
    expected and the bar time it should be reported at."""
    t = int(bars["ts"][i])
    if kind == "nan":
        bars["close"][i] = np.nan
    elif kind == "non_positive":
        bars["low"][i] = 0.0
    elif kind == "negative_volume":
        bars["volume"][i] = -5.0
    elif kind == "high_low":
        bars["high"][i], bars["low"][i] = bars["low"][i] * 0.99, bars["high"][i]
    elif kind == "close_out":
        bars["close"][i] = bars["high"][i] * 1.01
    elif kind == "open_out":
        bars["open"][i] = bars["low"][i] * 0.99
    elif kind == "duplicate":  # a second row for the time of row i
        for k in bars:
            bars[k] = np.insert(bars[k], i, bars[k][i])
        return "duplicate", t
    elif kind == "out_of_order":
        bars["ts"][i], bars["ts"][i + 1] = bars["ts"][i + 1], bars["ts"][i]
        return "out_of_order", int(bars["ts"][i + 1])
    elif kind == "gap":  # three bars missing before row i (earlier rows move back)
        bars["ts"][:i] -= 3 * H
        return "gap", int(bars["ts"][i - 1]) + H
    return {"high_low": "ohlc", "close_out": "ohlc", "open_out": "ohlc"}.get(kind, kind), t


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(DEFECTS), st.integers(1, 58)), min_size=1,
                max_size=6, unique_by=lambda x: x[1]))
def test_every_injected_defect_is_found(damage):
    bars = copy(CLEAN)
    kinds = [k for k, _ in damage]
    slots = [s for _, s in damage]  # rows 10*slot: far apart, never the last
    # inject from the end: a gap moves the rows before it, not those already damaged
    expected = []
    for kind, slot in sorted(zip(kinds, slots, strict=True), key=lambda x: -x[1]):
        expected.append(inject(bars, kind, slot * 10))
    found = check_bars(bars, "1h", Calendar.parse("24/7"))
    assert sorted((x.kind, x.ts) for x in found) == sorted(expected)
    fixed, _ = repair(bars)
    dropped = sum(kinds.count(k) for k in ("nan", "non_positive", "negative_volume"))
    assert [x.kind for x in check_bars(fixed, "1h", Calendar.parse("24/7"))] == [
        "gap"] * (kinds.count("gap") + dropped)  # a dropped row leaves a gap


def test_each_issue_names_its_bar():
    bars = copy(CLEAN)
    bars["close"][100] = np.nan
    bars["high"][200] = bars["low"][200] * 0.5
    bars = {k: np.insert(v, 300, v[299]) for k, v in bars.items()}  # row 299 twice
    bars["ts"][400:] += 2 * H
    issues = check_bars(bars, "1h", Calendar.parse("24/7"))
    assert [(i.kind, i.ts, i.count) for i in issues] == [
        ("nan", int(bars["ts"][100]), 1),
        ("ohlc", int(bars["ts"][200]), 1),
        ("duplicate", int(bars["ts"][299]), 1),
        ("gap", int(bars["ts"][399]) + H, 2),
    ]
    assert "row 101: close not a number" in issues[0].detail  # rows count from 1
    assert [i.row for i in issues] == [101, 201, 300, None]
    assert "(rows 300, 301)" in issues[2].detail
    assert "high" in issues[1].detail and "< low" in issues[1].detail


def test_repair_says_what_changed():
    bars = copy(CLEAN)
    bars["close"][5] = np.nan
    bars["open"][6] = -1.0
    bars["volume"][7] = -1.0
    bars = {k: np.insert(v, 11, v[10]) for k, v in bars.items()}
    bars["close"][11] = bars["close"][10] * 1.01  # duplicate of row 10: the second one is kept
    bars["ts"][20], bars["ts"][21] = bars["ts"][21], bars["ts"][20]
    bars["close"][30] = bars["high"][30] * 1.5
    bars["high"][11] = max(bars["high"][11], bars["close"][11])
    fixed, changes = repair(bars)
    assert changes == [
        "dropped 1 rows with NaN or infinite values",
        "dropped 1 rows with non-positive prices",
        "dropped 1 rows with negative volume",
        "dropped 1 duplicate rows (kept the last of each time)",
        "sorted the rows by time",
        "widened high/low of 1 bars to contain open and close",
    ]
    assert len(fixed["ts"]) == 600 - 3
    assert fixed["close"][list(fixed["ts"]).index(bars["ts"][10])] == bars["close"][11]
    assert np.all(np.diff(fixed["ts"]) > 0)
    assert repair(CLEAN)[1] == []


def test_weekday_session_calendar_in_new_york():
    """1m bars of a 09:30-16:00 New York session over a DST change: no false gaps."""
    ny = ZoneInfo("America/New_York")
    stamps = []
    day = dt.date(2024, 3, 7)  # Thu; US clocks change on Sun 2024-03-10
    while day <= dt.date(2024, 3, 14):
        if day.weekday() < 5:
            open_ = dt.datetime.combine(day, dt.time(9, 30), ny)
            stamps += [int(open_.timestamp() * 10**9) + k * 60 * 10**9 for k in range(1, 391)]
        day += dt.timedelta(days=1)
    ts = np.array(stamps, dtype=np.int64)
    cal = Calendar.parse("weekdays", session="09:30-16:00", tz="America/New_York")
    assert find_gaps(ts, "1m", cal) == []
    holed = np.delete(ts, np.s_[500:505])
    gaps = find_gaps(holed, "1m", cal)
    assert [(g.ts, g.count) for g in gaps] == [(int(ts[500]), 5)]
    assert find_gaps(ts, "1m", Calendar.parse("24/7"))  # 24/7 sees nights and the weekend


def test_daily_weekdays_with_holidays_and_auto():
    days = np.array([np.datetime64("2024-07-01") + i for i in range(12)])
    weekdays = [d for d in days if d.astype(dt.date).weekday() < 5]
    ts = np.array([d.astype("datetime64[ns]").astype(np.int64) for d in weekdays])
    no_july4 = ts[[d.astype(dt.date) != dt.date(2024, 7, 4) for d in weekdays]]
    auto = find_gaps(no_july4, "1d")
    assert [(g.count, "inferred" in g.detail) for g in auto] == [(1, True)]
    cal = Calendar.parse("weekdays", holidays=["2024-07-04"])
    assert find_gaps(no_july4, "1d", cal) == []
