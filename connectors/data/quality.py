"""Data quality: find gaps, duplicates, out-of-order rows, NaN, non-positive prices and OHLC
inconsistencies in a bar batch, and repair what can be repaired.

Gaps are judged against a :class:`Calendar`: ``24/7`` (every bar of the interval), or
``weekdays`` with optional session hours in a time zone and holidays. ``auto`` picks
``weekdays`` when the data has no weekend bar, else ``24/7``. For ``1d`` bars a day is the UTC
date of the bar's time; intraday bars are expected at ``open + k * interval`` up to the close
of each session (24 h when no session is given).

>>> import numpy as np
>>> day = 86_400 * 10**9
>>> ts = np.array([0, 1, 2, 2, 5]) * day                  # a duplicate, then 2 days missing
>>> bars = {"ts": ts, "open": np.array([1.0, 1, 1, 1, 1]),
...         "high": np.array([2.0, 2, 0.5, 2, 1.2]),      # row 2: high < low; 4: close > high
...         "low": np.array([0.5, 0.5, 0.9, 0.5, 0.5]),
...         "close": np.array([1.5, np.nan, 0.7, 1.5, 1.5]), "volume": np.ones(5)}
>>> [i.kind for i in check_bars(bars, "1d", Calendar.parse("24/7"))]
['nan', 'ohlc', 'ohlc', 'duplicate', 'gap']
>>> fixed, changes = repair(bars)
>>> for change in changes:
...     print(change)
dropped 1 rows with NaN or infinite values
dropped 1 duplicate rows (kept the last of each time)
widened high/low of 1 bars to contain open and close
>>> [i.kind for i in check_bars(fixed, "1d", Calendar.parse("24/7"))]
['gap', 'gap']
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_ns
from qmtl.core.times import format_ts

DAY = 86_400 * 10**9
PRICES = ("open", "high", "low", "close")
KINDS = ("out_of_order", "nan", "non_positive", "negative_volume", "ohlc", "duplicate", "gap")
"""Issue kinds, in the order a report lists them."""


@dataclass(frozen=True)
class Issue:
    """One defect: its kind, the bar time (for a gap, the first missing bar), the bars it
    concerns (for a gap, how many are missing) and a description."""

    kind: str
    ts: int
    count: int
    detail: str
    end: int | None = None  # last missing bar of a gap

    def __str__(self) -> str:
        return f"{self.kind} at {format_ts(self.ts)}: {self.detail}"


@dataclass(frozen=True)
class Calendar:
    """When bars are expected: ``kind`` is ``24/7`` or ``weekdays``; ``session`` is local
    ``(open, close)`` times (bars stamped after open up to close); ``tz`` an IANA zone.

    >>> Calendar.parse("weekdays", session="09:30-16:00", tz="America/New_York").session
    (datetime.time(9, 30), datetime.time(16, 0))
    """

    kind: str = "auto"
    session: tuple[dt.time, dt.time] | None = None
    tz: str = "UTC"
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    inferred: bool = False

    @classmethod
    def parse(
        cls,
        kind: str = "auto",
        session: str | None = None,
        tz: str = "UTC",
        holidays: Iterable[str | dt.date] = (),
    ) -> Calendar:
        """From CLI-style text: ``24/7``, ``weekdays`` or ``auto``; ``HH:MM-HH:MM``; a zone."""
        if kind not in ("24/7", "weekdays", "auto"):
            raise ValueError(f"unknown calendar {kind!r}: use 24/7, weekdays or auto")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {tz!r} (an IANA name, e.g. America/New_York)"
            ) from None
        hours = None
        if session:
            try:
                a, b = (dt.time.fromisoformat(x.strip()) for x in session.split("-"))
            except ValueError:
                raise ValueError(
                    f"session {session!r}: use HH:MM-HH:MM, e.g. 09:30-16:00"
                ) from None
            if b <= a:
                raise ValueError(f"session {session!r}: the close must be after the open")
            hours = (a, b)
        days = frozenset(d if isinstance(d, dt.date) else dt.date.fromisoformat(d)
                         for d in holidays)
        return cls(kind, hours, tz, days)

    def resolve(self, ts: np.ndarray) -> Calendar:
        """``auto`` made concrete for these bars: weekdays when no bar falls on a weekend."""
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
        """Bar times the calendar expects in ``[first, last]`` (``weekdays`` only)."""
        zone = ZoneInfo(self.tz)
        if step >= DAY:
            d0 = dt.date(1970, 1, 1) + dt.timedelta(days=int(first // DAY))
            d1 = dt.date(1970, 1, 1) + dt.timedelta(days=int(last // DAY))
            days = [d0 + dt.timedelta(days=k) for k in range((d1 - d0).days + 1)]
            keep = [d for d in days if d.weekday() < 5 and d not in self.holidays]
            offset = first % DAY
            return np.array([(d - dt.date(1970, 1, 1)).days * DAY + offset for d in keep],
                            dtype=np.int64)
        open_t, close_t = self.session or (dt.time(0), None)
        local0 = dt.datetime.fromtimestamp(first // 10**9, zone).date() - dt.timedelta(days=1)
        local1 = dt.datetime.fromtimestamp(last // 10**9, zone).date() + dt.timedelta(days=1)
        out = []
        day = local0
        while day <= local1:
            if day.weekday() < 5 and day not in self.holidays:
                start = dt.datetime.combine(day, open_t, zone)
                stop = (dt.datetime.combine(day, close_t, zone) if close_t
                        else dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), zone))
                a = int(start.timestamp()) * 10**9
                b = int(stop.timestamp()) * 10**9
                out.append(np.arange(a + step, b + 1, step, dtype=np.int64))
            day += dt.timedelta(days=1)
        grid = np.concatenate(out) if out else np.empty(0, dtype=np.int64)
        return grid[(grid >= first) & (grid <= last)]


def _bars(n: int) -> str:
    return f"{n} bar" if n == 1 else f"{n} bars"


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def check_bars(bars: Batch, interval: str, calendar: Calendar | None = None) -> list[Issue]:
    """Every defect in ``bars`` (rows in file order), listed by kind then time."""
    missing = [c for c in BAR_COLUMNS if c not in bars]
    if missing:
        raise ValueError(f"missing column {missing[0]!r}")
    ts = np.asarray(bars["ts"], dtype=np.int64)
    cols = {c: np.asarray(bars[c], dtype=np.float64) for c in BAR_COLUMNS[1:]}
    issues: list[Issue] = []
    if len(ts) > 1:
        for i in _rows(ts[1:] < ts[:-1]) + 1:
            issues.append(Issue("out_of_order", int(ts[i]), 1,
                                f"row {i} comes after a later bar ({format_ts(int(ts[i - 1]))})"))
    finite = np.ones(len(ts), dtype=bool)
    for v in cols.values():
        finite &= np.isfinite(v)
    for i in _rows(~finite):
        bad = [c for c in BAR_COLUMNS[1:] if not np.isfinite(cols[c][i])]
        issues.append(Issue("nan", int(ts[i]), 1, f"row {i}: {', '.join(bad)} not a number"))
    nonpos = finite & np.any([cols[c] <= 0 for c in PRICES], axis=0)
    for i in _rows(nonpos):
        bad = [f"{c} {cols[c][i]:g}" for c in PRICES if cols[c][i] <= 0]
        issues.append(Issue("non_positive", int(ts[i]), 1, f"row {i}: {', '.join(bad)}"))
    for i in _rows(finite & (cols["volume"] < 0)):
        issues.append(Issue("negative_volume", int(ts[i]), 1,
                            f"row {i}: volume {cols['volume'][i]:g}"))
    o, h, lo, c = (cols[k] for k in PRICES)
    bad_ohlc = finite & ~nonpos & ((h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo))
    for i in _rows(bad_ohlc):
        what = []
        if h[i] < lo[i]:
            what.append(f"high {h[i]:g} < low {lo[i]:g}")
        for name, v in (("open", o[i]), ("close", c[i])):
            if v > h[i]:
                what.append(f"{name} {v:g} > high {h[i]:g}")
            elif v < lo[i]:
                what.append(f"{name} {v:g} < low {lo[i]:g}")
        issues.append(Issue("ohlc", int(ts[i]), 1, f"row {i}: {'; '.join(what)}"))
    uniq, counts = np.unique(ts, return_counts=True)
    for t, n in zip(uniq[counts > 1], counts[counts > 1], strict=True):
        issues.append(Issue("duplicate", int(t), int(n - 1), f"{n} rows at this time"))
    issues += find_gaps(uniq, interval, calendar)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(issues, key=lambda x: (order[x.kind], x.ts))


def find_gaps(ts: np.ndarray, interval: str, calendar: Calendar | None = None) -> list[Issue]:
    """Runs of expected bars missing between the first and last of ``ts`` (sorted, unique).

    >>> m = 60 * 10**9
    >>> [(g.count, g.detail) for g in find_gaps(np.array([1, 2, 6]) * m, "1m")]
    [(3, '3 bars missing (to 1970-01-01T00:05:00Z)')]
    """
    step = interval_ns(interval)
    if len(ts) < 2:
        return []
    cal = (calendar or Calendar()).resolve(ts)
    out = []
    if cal.kind == "24/7":
        diffs = np.diff(ts)
        for i in _rows(diffs > step):
            n = int(-(-diffs[i] // step)) - 1
            a, b = int(ts[i] + step), int(ts[i + 1] - step)
            out.append(Issue("gap", a, n, f"{_bars(n)} missing (to {format_ts(b)})", end=b))
        return out
    want = cal.expected(int(ts[0]), int(ts[-1]), step)
    if step >= DAY:  # compare days, whatever time of day the bars carry
        have = np.unique(ts // DAY)
        lost = want[~np.isin(want // DAY, have)]
    else:
        lost = np.setdiff1d(want, ts, assume_unique=True)
    if not len(lost):
        return out
    pos = np.searchsorted(want, lost)
    breaks = _rows(np.diff(pos) != 1) + 1
    for run in np.split(np.arange(len(lost)), breaks):
        a, b = int(lost[run[0]]), int(lost[run[-1]])
        out.append(Issue("gap", a, len(run),
                         f"{_bars(len(run))} missing (to {format_ts(b)}; {cal.describe()})",
                         end=b))
    return out


def repair(bars: Batch) -> tuple[Batch, list[str]]:
    """A repaired copy and what changed: rows with NaN, non-positive prices or negative
    volume dropped; duplicates dropped (the last row of each time kept, in file order); rows
    sorted by time; high/low widened to contain open and close. Gaps are left (backfill
    fills them)."""
    ts = np.asarray(bars["ts"], dtype=np.int64)
    cols = {c: np.asarray(bars[c], dtype=np.float64).copy() for c in BAR_COLUMNS[1:]}
    changes = []
    finite = np.all([np.isfinite(v) for v in cols.values()], axis=0) if len(ts) else np.ones(0,
                                                                                           bool)
    keep = finite.copy()
    if (~finite).any():
        changes.append(f"dropped {int((~finite).sum())} rows with NaN or infinite values")
    nonpos = finite & np.any([cols[c] <= 0 for c in PRICES], axis=0) if len(ts) else keep
    if nonpos.any():
        changes.append(f"dropped {int(nonpos.sum())} rows with non-positive prices")
    keep &= ~nonpos
    negvol = keep & (cols["volume"] < 0)
    if negvol.any():
        changes.append(f"dropped {int(negvol.sum())} rows with negative volume")
    keep &= ~negvol
    idx = _rows(keep)
    # the last row (in file order) of each time wins
    rev = idx[::-1]
    _, first_in_rev = np.unique(ts[rev], return_index=True)
    chosen = np.sort(rev[first_in_rev])
    if len(chosen) < len(idx):
        changes.append(f"dropped {len(idx) - len(chosen)} duplicate rows "
                       "(kept the last of each time)")
    if np.any(np.diff(ts[chosen]) < 0):
        changes.append("sorted the rows by time")
    chosen = chosen[np.argsort(ts[chosen], kind="stable")]
    out = {"ts": ts[chosen], **{c: v[chosen] for c, v in cols.items()}}
    o, h, lo, c = (out[k] for k in PRICES)
    hi_new = np.maximum.reduce([o, h, lo, c])
    lo_new = np.minimum.reduce([o, h, lo, c])
    widened = (hi_new != h) | (lo_new != lo)
    if widened.any():
        changes.append(f"widened high/low of {int(widened.sum())} bars to contain open and close")
    out["high"], out["low"] = hi_new, lo_new
    return out, changes
