"""Data quality: find gaps, duplicates, out-of-order rows, NaN, non-positive prices and OHLC
inconsistencies in a bar batch, and repair what can be repaired.

Gaps are judged against a :class:`~connectors.data.calendars.Calendar`: ``24/7``,
``weekdays`` (with optional session hours and holidays), an exchange's (``XNYS``...) or
``auto``. Rows are numbered from 1, the first bar (of a CSV file: the first line after the
header), in the order of the input.

>>> import numpy as np
>>> day = 86_400 * 10**9
>>> ts = np.array([0, 1, 2, 2, 5]) * day                  # a duplicate, then 2 days missing
>>> bars = {"ts": ts, "open": np.array([1.0, 1, 1, 1, 1]),
...         "high": np.array([2.0, 2, 0.5, 2, 1.2]),      # row 3: high < low; 5: close > high
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

from dataclasses import dataclass

import numpy as np

from connectors.data.calendars import DAY, Calendar
from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_ns
from qmtl.core.times import format_ts

PRICES = ("open", "high", "low", "close")
KINDS = ("out_of_order", "nan", "non_positive", "negative_volume", "ohlc", "duplicate", "gap")
"""Issue kinds, in the order a report lists them."""


@dataclass(frozen=True)
class Issue:
    """One defect: its kind, the bar time (for a gap, the first missing bar), the bars it
    concerns (for a gap, how many are missing), a description, and the row it is at,
    counting from 1 (the first of the rows for a duplicate; none for a gap).

    >>> str(Issue("nan", 0, 1, "row 3: close not a number", row=3))
    'nan at 1970-01-01T00:00:00Z: row 3: close not a number'
    """

    kind: str
    ts: int
    count: int
    detail: str
    end: int | None = None  # last missing bar of a gap
    row: int | None = None

    def __str__(self) -> str:
        return f"{self.kind} at {format_ts(self.ts)}: {self.detail}"


def _bars(n: int) -> str:
    return f"{n} bar" if n == 1 else f"{n} bars"


def _rows(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def _listed(rows: np.ndarray, most: int = 5) -> str:
    """``rows`` (numbered from 1) as text, the first ``most`` of them.

    >>> _listed(np.array([3, 4])), _listed(np.arange(1, 9))
    ('rows 3, 4', 'rows 1, 2, 3, 4, 5 and 3 more')
    """
    text = ", ".join(str(int(r)) for r in rows[:most])
    return f"rows {text}" + (f" and {len(rows) - most} more" if len(rows) > most else "")


def check_bars(bars: Batch, interval: str, calendar: Calendar | None = None) -> list[Issue]:
    """Every defect in ``bars`` (rows in input order, numbered from 1), listed by kind then
    time.

    >>> ts = np.array([2, 1, 1]) * DAY
    >>> bars = {"ts": ts, **{c: np.ones(3) for c in ("open", "high", "low", "close", "volume")}}
    >>> [i.detail for i in check_bars(bars, "1d")]
    ['row 2 comes after a later bar (1970-01-03T00:00:00Z)', '2 rows at this time (rows 2, 3)']
    """
    missing = [c for c in BAR_COLUMNS if c not in bars]
    if missing:
        raise ValueError(f"missing column {missing[0]!r}")
    ts = np.asarray(bars["ts"], dtype=np.int64)
    cols = {c: np.asarray(bars[c], dtype=np.float64) for c in BAR_COLUMNS[1:]}
    issues: list[Issue] = []
    if len(ts) > 1:
        for i in _rows(ts[1:] < ts[:-1]) + 1:
            issues.append(Issue("out_of_order", int(ts[i]), 1, f"row {i + 1} comes after a "
                                f"later bar ({format_ts(int(ts[i - 1]))})", row=int(i) + 1))
    finite = np.ones(len(ts), dtype=bool)
    for v in cols.values():
        finite &= np.isfinite(v)
    for i in _rows(~finite):
        bad = [c for c in BAR_COLUMNS[1:] if not np.isfinite(cols[c][i])]
        issues.append(Issue("nan", int(ts[i]), 1, f"row {i + 1}: {', '.join(bad)} not a number",
                            row=int(i) + 1))
    nonpos = finite & np.any([cols[c] <= 0 for c in PRICES], axis=0)
    for i in _rows(nonpos):
        bad = [f"{c} {cols[c][i]:g}" for c in PRICES if cols[c][i] <= 0]
        issues.append(Issue("non_positive", int(ts[i]), 1, f"row {i + 1}: {', '.join(bad)}",
                            row=int(i) + 1))
    for i in _rows(finite & (cols["volume"] < 0)):
        issues.append(Issue("negative_volume", int(ts[i]), 1,
                            f"row {i + 1}: volume {cols['volume'][i]:g}", row=int(i) + 1))
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
        issues.append(Issue("ohlc", int(ts[i]), 1, f"row {i + 1}: {'; '.join(what)}",
                            row=int(i) + 1))
    order = np.argsort(ts, kind="stable")
    uniq, starts, counts = np.unique(ts[order], return_index=True, return_counts=True)
    for t, a, n in zip(uniq[counts > 1], starts[counts > 1], counts[counts > 1], strict=True):
        rows = np.sort(order[a : a + n]) + 1
        issues.append(Issue("duplicate", int(t), int(n - 1),
                            f"{n} rows at this time ({_listed(rows)})", row=int(rows[0])))
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
    fills them).

    >>> one = {c: np.array([1.0, 1.0]) for c in BAR_COLUMNS[1:]}
    >>> fixed, changes = repair({"ts": np.array([DAY, DAY]), **one})
    >>> fixed["ts"].tolist(), changes
    ([86400000000000], ['dropped 1 duplicate rows (kept the last of each time)'])
    """
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
