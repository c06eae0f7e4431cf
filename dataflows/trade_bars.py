"""Trades into bars by event time: a pure, batch-invariant operator (no I/O, no clock).

A trade is ``ts`` (int64 ns, UTC), ``price`` (> 0), ``size`` (>= 0) and optionally an ``id``
(text; a repeated id is the same trade delivered twice and is counted once). A bar stamped
at ``T`` (its close) aggregates the trades with ``T - step < ts <= T`` on the epoch-aligned
grid, exactly as the catalog's resampler (:mod:`dataflows.resample`) aggregates bars:
``open`` the first trade's price, ``high``/``low`` the extremes, ``close`` the last, ``volume``
the sum of sizes. Trades at the same time are ordered by ``(ts, id, price, size)``, whatever
order they arrived in, so the bars do not depend on arrival order.

**Watermark.** The watermark is the latest trade time seen less the allowed ``lateness``; a
bar closes (is emitted) once the watermark has passed its end. A trade whose bar has already
closed is **late**: it is counted and, by ``late``, either dropped (``"drop"``) or folded into
the next bar still open (``"fold"``, as if it happened at that bar's start). Nothing is
dropped without a count (:attr:`TradeBars.counts`).

**Empty intervals.** ``empty="skip"`` (the default, the catalog's rule) gives no bar for an
interval without trades; ``empty="carry"`` gives a bar at the previous close with volume 0.

Why our own operator and not Bytewax's windowing: the bars must equal the catalog's
bit for bit (the same :func:`~dataflows.resample.aggregate` over the same ordered rows), the
state must be snapshotted together with the feed's offsets by the live source (one recovery
snapshot, so a restart neither loses nor repeats a trade), and a late trade must be counted
and folded by a rule of ours; a pure class is also testable without a dataflow.

>>> m = 60 * 10**9
>>> tb = TradeBars("1m", lateness=10 * 10**9)
>>> out = tb.add({"ts": [30 * 10**9, 50 * 10**9, 70 * 10**9], "price": [1.0, 3.0, 2.0],
...               "size": [1.0, 1.0, 5.0]})
>>> len(out["ts"])                            # the watermark (70 s - 10 s) is before 1:00
0
>>> out = tb.add({"ts": [80 * 10**9], "price": [2.5], "size": [1.0]})   # watermark 70 s
>>> (out["ts"] // m).tolist(), out["open"].tolist(), out["high"].tolist(), out["volume"].tolist()
([1], [1.0], [3.0], [2.0])
>>> _ = tb.add({"ts": [55 * 10**9], "price": [9.0], "size": [1.0]})     # its bar has closed
>>> tb.counts["late_dropped"]
1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dataflows.resample import _empty, _step, aggregate, bucket_ends
from qmtl.core.bars import Batch


def _frozen_empty() -> Batch:
    out = _empty()
    for v in out.values():
        v.setflags(write=False)
    return out


NOTHING = _frozen_empty()
"""No bars (read-only, shared: what most calls return)."""
LATE_RULES = ("drop", "fold")
EMPTY_RULES = ("skip", "carry")
COUNTS = ("trades", "duplicates", "late_dropped", "late_folded", "empty_bars")


def _columns(trades: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ts``, ``price``, ``size`` and ``id`` (text, ``""`` when none) as arrays."""
    ts = np.asarray(trades["ts"], dtype=np.int64)
    price = np.asarray(trades["price"], dtype=np.float64)
    size = np.asarray(trades["size"], dtype=np.float64)
    if not (len(ts) == len(price) == len(size)):
        raise ValueError("trades: ts, price and size must have the same length")
    raw = trades.get("id")
    if raw is None:
        ids = np.full(len(ts), "", dtype=object)
    else:
        ids = np.array(["" if v is None else str(v) for v in raw], dtype=object)
    return ts, price, size, ids


def _order(ts: np.ndarray, ids: np.ndarray, price: np.ndarray, size: np.ndarray) -> np.ndarray:
    """The canonical order of trades: by time, then id, price and size (the ids, as text,
    only sorted when two trades share a time)."""
    by_time = np.argsort(ts, kind="stable")
    if len(ts) < 2 or np.all(np.diff(ts[by_time]) > 0):
        return by_time
    keys = np.unique(ids.astype(str), return_inverse=True)[1]
    return np.lexsort((size, price, keys, ts))


def _bars(
    ts: np.ndarray, price: np.ndarray, size: np.ndarray, ids: np.ndarray, step: int, offset: int
) -> Batch:
    """Bars of trades (any order): the canonical order, then the resampler's aggregation."""
    if not len(ts):
        return _empty()
    o = _order(ts, ids, price, size)
    p = price[o]
    rows = {"ts": ts[o], "open": p, "high": p, "low": p, "close": p, "volume": size[o]}
    return aggregate(rows, bucket_ends(rows["ts"], step, offset))


def _carry(
    bars: Batch, step: int, prev_end: int | None, prev_close: float | None, upto: int | None = None
) -> Batch:
    """``bars`` with a bar at the previous close, volume 0, for every empty interval after
    ``prev_end`` (the last bar already made, at ``prev_close``) or the first bar, up to the
    last bar (or ``upto``, when later).

    >>> b = {"ts": np.array([2, 5]), "open": np.array([1.0, 3]), "high": np.array([1.0, 3]),
    ...      "low": np.array([1.0, 3]), "close": np.array([1.5, 3]), "volume": np.ones(2)}
    >>> c = _carry(b, 1, None, None)
    >>> c["ts"].tolist(), c["close"].tolist(), c["volume"].tolist()
    ([2, 3, 4, 5], [1.5, 1.5, 1.5, 3.0], [1.0, 0.0, 0.0, 1.0])
    """
    n = len(bars["ts"])
    known = prev_close is not None and prev_end is not None
    if not n and not known:
        return bars
    first = prev_end + step if known else int(bars["ts"][0])
    last = max(int(bars["ts"][-1]) if n else first - step, upto if upto is not None else 0)
    grid = np.arange(first, last + 1, step, dtype=np.int64)
    if len(grid) == n:
        return bars
    if not n:
        bars = {
            "ts": np.array([first - step]),
            **{c: np.array([prev_close]) for c in ("open", "high", "low", "close")},
            "volume": np.zeros(1),
        }
    pos = np.searchsorted(bars["ts"], grid, side="right") - 1  # the last bar at or before
    at = np.maximum(pos, 0)
    have = (pos >= 0) & (bars["ts"][at] == grid)
    carried = np.where(pos >= 0, bars["close"][at], np.nan if prev_close is None else prev_close)
    out: Batch = {"ts": grid}
    for c in ("open", "high", "low", "close"):
        out[c] = np.where(have, bars[c][at], carried)
    out["volume"] = np.where(have, bars["volume"][at], 0.0)
    return out


def trades_to_bars(
    trades: Mapping[str, Any], interval: str | int, *, offset: int = 0, empty: str = "skip"
) -> Batch:
    """The catalog's bars of a set of trades (any order; a repeated id counted once): what
    :class:`TradeBars` emits from them live, in any arrival order within its lateness.

    >>> s = 10**9
    >>> b = trades_to_bars({"ts": [90 * s, 10 * s, 150 * s, 10 * s], "price": [2.0, 1.0, 4.0, 1.0],
    ...                     "size": [1.0, 1.0, 2.0, 1.0], "id": ["b", "a", "c", "a"]}, "1m",
    ...                    empty="carry")
    >>> (b["ts"] // (60 * s)).tolist(), b["close"].tolist(), b["volume"].tolist()
    ([1, 2, 3], [1.0, 2.0, 4.0], [1.0, 1.0, 2.0])
    """
    if empty not in EMPTY_RULES:
        raise ValueError(f"empty must be one of {', '.join(EMPTY_RULES)}, got {empty!r}")
    step = _step(interval)
    ts, price, size, ids = _columns(trades)
    named = ids != ""
    if named.any():  # the first of each id (repeats are the same trade)
        _, first = np.unique(ids[named].astype(str), return_index=True)
        keep = ~named
        keep[np.flatnonzero(named)[first]] = True
        ts, price, size, ids = ts[keep], price[keep], size[keep], ids[keep]
    bars = _bars(ts, price, size, ids, step, offset)
    return _carry(bars, step, None, None) if empty == "carry" else bars


class TradeBars:
    """One symbol's trades into closed bars of ``interval`` (see the module docstring).

    ``lateness``: how far (ns) behind the latest trade a trade may be and still count in its
    own bar; ``late``: ``"drop"`` or ``"fold"``; ``empty``: ``"skip"`` or ``"carry"``;
    ``remember``: how long (ns) behind the watermark trade ids are kept to find repeats
    (default: the lateness and ten bars; a repeat older than that is a late trade).

    >>> TradeBars("1m", late="keep")
    Traceback (most recent call last):
    ...
    ValueError: late must be one of drop, fold, got 'keep'
    """

    def __init__(
        self,
        interval: str | int,
        lateness: int = 0,
        *,
        late: str = "drop",
        empty: str = "skip",
        offset: int = 0,
        remember: int | None = None,
    ) -> None:
        if late not in LATE_RULES:
            raise ValueError(f"late must be one of {', '.join(LATE_RULES)}, got {late!r}")
        if empty not in EMPTY_RULES:
            raise ValueError(f"empty must be one of {', '.join(EMPTY_RULES)}, got {empty!r}")
        if lateness < 0:
            raise ValueError(f"lateness must be >= 0 ns, got {lateness}")
        self.step = _step(interval)
        self.lateness = int(lateness)
        self.late, self.empty, self.offset = late, empty, int(offset)
        self.remember = int(remember if remember is not None else lateness + 10 * self.step)
        self.counts = dict.fromkeys(COUNTS, 0)
        self._rows: list[tuple[np.ndarray, ...]] = []  # trades of the open bars
        self._max_ts: int | None = None
        self._closed: int | None = None  # the end of the last closed bar
        self._last_close: float | None = None
        self._last_end: int | None = None  # the end of the last bar made
        self._ids: dict[str, int] = {}  # id -> the end of its bar
        self._by_end: dict[int, list[str]] = {}  # bar end -> its ids (to forget them)

    @property
    def watermark(self) -> int | None:
        """The latest trade time less the lateness (None before the first trade).

        >>> tb = TradeBars(60, lateness=5); _ = tb.add({"ts": [100], "price": [1], "size": [1]})
        >>> tb.watermark
        95
        """
        return None if self._max_ts is None else self._max_ts - self.lateness

    def add(self, trades: Mapping[str, Any]) -> Batch:
        """Add trades (any order, any batch size); return the bars this closed."""
        ts, price, size, ids = _columns(trades)
        if not len(ts):
            return _empty()
        self.counts["trades"] += len(ts)
        keep = np.ones(len(ts), dtype=bool)
        ends = bucket_ends(ts, self.step, self.offset)
        for i in np.flatnonzero(ids != ""):  # a repeated id: the same trade again
            if ids[i] in self._ids:
                keep[i] = False
                self.counts["duplicates"] += 1
            else:
                end = int(ends[i])
                self._ids[ids[i]] = end
                self._by_end.setdefault(end, []).append(ids[i])
        late = keep & (ends <= self._closed) if self._closed is not None else None
        if late is not None and late.any():
            n = int(late.sum())
            if self.late == "drop":
                keep &= ~late
                self.counts["late_dropped"] += n
            else:  # at the start of the next bar still open
                ts = np.where(late, self._closed + 1, ts)
                self.counts["late_folded"] += n
        if keep.any():
            self._rows.append((ts[keep], price[keep], size[keep], ids[keep]))
            top = int(ts[keep].max())
            self._max_ts = top if self._max_ts is None else max(self._max_ts, top)
        return self._close()

    def advance(self, now: int) -> Batch:
        """Event time has reached ``now`` (e.g. the end of a replay): close the bars whose
        end the watermark ``now - lateness`` has passed.

        >>> tb = TradeBars(60); _ = tb.add({"ts": [10], "price": [1.0], "size": [1.0]})
        >>> tb.advance(60)["ts"].tolist(), tb.advance(61)["ts"].tolist()
        ([], [60])
        """
        self._max_ts = now if self._max_ts is None else max(self._max_ts, int(now))
        return self._close()

    def _close(self) -> Batch:
        w = self.watermark
        if w is None or (not self._rows and self.empty == "skip"):
            return NOTHING
        upto = -(-(w - self.offset) // self.step) * self.step + self.offset - self.step
        if self._closed is not None and upto <= self._closed:
            return NOTHING
        if not self._rows:
            self._rows = [(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0, object))]
        ts, price, size, ids = (np.concatenate(c) for c in zip(*self._rows, strict=True))
        done = bucket_ends(ts, self.step, self.offset) <= upto
        self._rows = [(ts[~done], price[~done], size[~done], ids[~done])] if (~done).any() else []
        bars = _bars(ts[done], price[done], size[done], ids[done], self.step, self.offset)
        if self.empty == "carry":
            n = len(bars["ts"])
            bars = _carry(bars, self.step, self._last_end, self._last_close, upto)
            self.counts["empty_bars"] += len(bars["ts"]) - n
        prev, self._closed = self._closed, upto
        if len(bars["ts"]):
            self._last_close = float(bars["close"][-1])
            self._last_end = int(bars["ts"][-1])
        if self._by_end and (prev is None or upto - prev >= self.step):
            horizon = upto - self.remember  # ids of bars this far behind are forgotten
            for end in [e for e in self._by_end if e <= horizon]:
                for k in self._by_end.pop(end):
                    if self._ids.get(k) == end:
                        del self._ids[k]
        return bars

    def state(self) -> dict[str, Any]:
        """The operator's state, for a recovery snapshot (see :meth:`restore`).

        >>> tb = TradeBars(60); _ = tb.add({"ts": [10], "price": [1.0], "size": [2.0]})
        >>> again = TradeBars(60); again.restore(tb.state())
        >>> again.advance(61)["volume"].tolist()
        [2.0]
        """
        rows = [tuple(a.copy() for a in r) for r in self._rows]
        return {
            "rows": rows,
            "max_ts": self._max_ts,
            "closed": self._closed,
            "last_close": self._last_close,
            "last_end": self._last_end,
            "ids": dict(self._ids),
            "counts": dict(self.counts),
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Continue from :meth:`state`."""
        self._rows = list(state["rows"])
        self._max_ts, self._closed = state["max_ts"], state["closed"]
        self._last_close, self._last_end = state["last_close"], state["last_end"]
        self._ids = dict(state["ids"])
        self._by_end = {}
        for k, e in self._ids.items():
            self._by_end.setdefault(e, []).append(k)
        self.counts = {**dict.fromkeys(COUNTS, 0), **state["counts"]}
