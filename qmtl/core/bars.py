"""Bar batches: validation with errors that name the symbol and time, and small helpers.

A batch is a ``dict`` of equal-length numpy arrays: ``ts`` (int64 ns UTC, the bar's close
time) and ``open high low close volume`` (float64).

>>> import numpy as np
>>> bars = {"ts": np.array([1, 2]) * 10**9, "open": np.ones(2), "high": np.ones(2),
...         "low": np.ones(2), "close": np.array([1.0, -1.0]), "volume": np.ones(2)}
>>> validate_bars("AAPL", bars)
Traceback (most recent call last):
...
qmtl.core.bars.BadBarsError: AAPL: non-positive close -1.0 at 1970-01-01T00:00:02Z (2000000000)
>>> _, dropped = validate_bars("AAPL", bars, on_bad="drop")
>>> dropped
1
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.errors import QmtlError
from qmtl.core.times import format_ts

PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")

Batch = dict[str, np.ndarray]
"""A bar batch: column name -> equal-length numpy array (``ts`` int64 ns UTC, prices float64).

The one definition every layer uses; ``symbol``-keyed maps of batches are ``dict[str, Batch]``.
"""


class BadBarsError(QmtlError, ValueError):
    """A bar failed validation; says which symbol, which bar and what is wrong.

    >>> str(BadBarsError("BTC", 0, "close is NaN"))
    'BTC: close is NaN at 1970-01-01T00:00:00Z (0)'
    """

    def __init__(self, symbol: str, ts: int | None, reason: str) -> None:
        self.symbol, self.ts, self.reason = symbol, ts, reason
        where = f" at {format_ts(ts)} ({ts})" if ts is not None else ""
        super().__init__(f"{symbol}: {reason}{where}")


def empty_batch() -> Batch:
    """A batch with no rows.

    >>> len(empty_batch()["ts"])
    0
    """
    out = {c: np.empty(0) for c in BAR_COLUMNS}
    out["ts"] = np.empty(0, dtype=np.int64)
    return out


def slice_batch(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start:stop`` of every column (views, no copy).

    >>> slice_batch({"ts": np.arange(5)}, 1, 3)["ts"].tolist()
    [1, 2]
    """
    return {k: v[start:stop] for k, v in batch.items()}


def concat_batches(batches: list[Batch]) -> Batch:
    """Rows of several batches, one after the other.

    >>> concat_batches([{"ts": np.array([1])}, {"ts": np.array([2])}])["ts"].tolist()
    [1, 2]
    """
    if not batches:
        return empty_batch()
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _all_sound(batch: Batch, ts: np.ndarray, last_ts: int | None) -> bool:
    """Whole-batch verdict from a few reductions (a NaN makes min/max NaN, which fails):
    True when every bar passes, so replay batches skip the per-row checks."""
    if last_ts is not None and int(ts[0]) <= last_ts:
        return False
    if not bool((ts[1:] > ts[:-1]).all()):
        return False
    for c in PRICE_COLUMNS:
        col = np.asarray(batch[c])
        if not (col.min() > 0 and col.max() < math.inf):
            return False
    vol = np.asarray(batch["volume"])
    return bool(vol.min() >= 0 and vol.max() < math.inf)


def validate_bars(
    symbol: str,
    batch: Batch,
    *,
    last_ts: int | None = None,
    on_bad: Literal["raise", "drop"] = "raise",
) -> tuple[Batch, int]:
    """Check a batch; return it (bad rows dropped when ``on_bad="drop"``) and the drop count.

    Checks: every column present with equal lengths, finite prices and volume, positive
    prices, non-negative volume, and strictly increasing ``ts`` (also against ``last_ts``, the
    previous batch's last time). ``"raise"`` raises :class:`BadBarsError` for the earliest
    bad bar.

    >>> day = 86_400 * 10**9
    >>> bars = {"ts": np.array([day, day]), "open": np.ones(2), "high": np.ones(2),
    ...         "low": np.ones(2), "close": np.ones(2), "volume": np.ones(2)}
    >>> try:
    ...     validate_bars("X", bars)
    ... except BadBarsError as exc:
    ...     print(exc.reason)
    duplicate or out-of-order ts (previous bar at 1970-01-02T00:00:00Z)
    """
    missing = [c for c in BAR_COLUMNS if c not in batch]
    if missing:
        raise BadBarsError(symbol, None, f"missing column {missing[0]!r}")
    n = len(batch["ts"])
    for c in BAR_COLUMNS:
        if len(batch[c]) != n:
            raise BadBarsError(symbol, None, f"column {c!r} has {len(batch[c])} rows, ts has {n}")
    ts = np.asarray(batch["ts"])
    if n == 1 and ts.dtype.kind in "iu" and (last_ts is None or int(ts[0]) > last_ts):
        # one bar (live feeds): plain comparisons, same verdicts as the batch path
        o, h, lo, c, v = (float(batch[k][0]) for k in ("open", "high", "low", "close", "volume"))
        if (
            0 < o < math.inf
            and 0 < h < math.inf
            and 0 < lo < math.inf
            and 0 < c < math.inf
            and (0 <= v < math.inf)
        ):
            return batch, 0
    if ts.dtype.kind not in "iu":
        raise BadBarsError(symbol, None, f"ts must be int64 nanoseconds, got {ts.dtype}")
    if n > 1 and _all_sound(batch, ts, last_ts):
        return batch, 0
    ts = ts.astype(np.int64, copy=False)
    bad = np.zeros(n, dtype=bool)
    reasons: list[tuple[np.ndarray, str]] = []
    for c in (*PRICE_COLUMNS, "volume"):
        col = np.asarray(batch[c], dtype=np.float64)
        nonfinite = ~np.isfinite(col)
        reasons.append((nonfinite, f"{c} is not a finite number"))
        limit = col <= 0 if c != "volume" else col < 0
        reasons.append(
            (limit & ~nonfinite, f"non-positive {c}" if c != "volume" else "negative volume")
        )
    if n:
        prev = np.concatenate([[np.iinfo(np.int64).min if last_ts is None else last_ts], ts[:-1]])
        order_bad = ts <= prev
    else:
        order_bad = np.zeros(0, dtype=bool)
    for mask, _ in reasons:
        bad |= mask
    if not bad.any() and not order_bad.any():
        return batch, 0
    if on_bad == "raise":
        first_value_bad = int(np.argmax(bad)) if bad.any() else n
        first_order_bad = int(np.argmax(order_bad)) if order_bad.any() else n
        i = min(first_value_bad, first_order_bad)
        if i == first_order_bad and i < first_value_bad:
            before = int(last_ts if i == 0 and last_ts is not None else ts[i - 1] if i else ts[i])
            raise BadBarsError(
                symbol,
                int(ts[i]),
                f"duplicate or out-of-order ts (previous bar at {format_ts(before)})",
            )
        for mask, reason in reasons:
            if mask[i]:
                col_name = reason.split()[-1] if reason.startswith("non-positive") else None
                detail = f" {batch[col_name][i]}" if col_name else ""
                raise BadBarsError(symbol, int(ts[i]), f"{reason}{detail}")
    # drop: keep a row only when its values are sound and its ts exceeds every kept ts
    keep = ~bad
    running = np.iinfo(np.int64).min if last_ts is None else last_ts
    good_idx = np.flatnonzero(keep)
    kept_ts = ts[good_idx]
    prior_max = np.maximum.accumulate(np.concatenate([[running], kept_ts]))[:-1]
    keep_good = kept_ts > prior_max
    # (a row dropped for order never raises the running max, so the plain running max of
    # the value-valid rows is the running max of the kept ones)
    final = np.zeros(n, dtype=bool)
    final[good_idx[keep_good]] = True
    out = {k: np.asarray(v)[final] for k, v in batch.items()}
    return out, int(n - final.sum())
