"""Resampling: bars of one interval into a coarser one, as a batch-invariant stream operator.

A coarse bar stamped at ``T`` (its close) aggregates the source bars with ``T - dst < ts <= T``:
``open`` of the first, ``high`` the max, ``low`` the min, ``close`` of the last, ``volume`` the
sum. Buckets are aligned to the epoch (UTC) plus an optional ``offset``; a bucket with no source
bars yields no coarse bar (nothing is forward-filled).

A bucket is emitted only once it is **closed**: when a source bar stamped at its end arrives
(the last bar of the bucket) or a bar of a later bucket does, or when :meth:`Resampler.advance`
says the clock has reached its end. Until then its rows are carried to the next call, so any
split of the input into batches, down to one bar per batch, gives bit-identical output (each
bucket is aggregated once, over the same rows).

>>> import numpy as np
>>> m = 60 * 10**9
>>> ts = np.arange(1, 8) * m                       # seven 1m bars closing at 00:01 .. 00:07
>>> bars = {"ts": ts, "open": np.arange(1.0, 8), "high": np.arange(1.0, 8) + 1,
...         "low": np.arange(1.0, 8) - 0.5, "close": np.arange(1.0, 8) + 0.5,
...         "volume": np.ones(7)}
>>> r = Resampler("1m", "5m")
>>> out = r.update(bars)                           # 00:01..00:05 form the 00:05 bar
>>> (out["ts"] // m).tolist(), out["open"].tolist(), out["close"].tolist(), out["volume"].tolist()
([5], [1.0], [5.5], [5.0])
>>> len(r.update({k: v[:0] for k, v in bars.items()})["ts"])   # 00:06, 00:07 still open
0
>>> (r.advance(10 * m)["ts"] // m).tolist()        # the clock passed 00:10: the bucket closed
[10]
"""

from __future__ import annotations

import numpy as np

from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_ns


def _step(interval: str | int) -> int:
    if isinstance(interval, (int, np.integer)):
        if interval < 1:
            raise ValueError(f"interval must be >= 1 ns, got {interval}")
        return int(interval)
    return interval_ns(interval)


def _empty() -> Batch:
    out = {c: np.empty(0, dtype=np.float64) for c in BAR_COLUMNS}
    out["ts"] = np.empty(0, dtype=np.int64)
    return out


def bucket_ends(ts: np.ndarray, step: int, offset: int = 0) -> np.ndarray:
    """The close time of the bucket of each bar: the first grid point ``>= ts``.

    >>> bucket_ends(np.array([1, 5, 6, 10, 11]), 5).tolist()
    [5, 5, 10, 10, 15]
    """
    shifted = np.asarray(ts, dtype=np.int64) - offset
    return -(-shifted // step) * step + offset


def aggregate(batch: Batch, ends: np.ndarray) -> Batch:
    """OHLCV of each run of equal ``ends`` in ``batch`` (rows in time order), stamped at the end.

    >>> b = {"ts": np.array([1, 2, 3]), "open": np.array([1.0, 2, 3]),
    ...      "high": np.array([5.0, 6, 7]), "low": np.array([0.5, 0.2, 0.9]),
    ...      "close": np.array([1.5, 2.5, 3.5]), "volume": np.array([1.0, 2, 4])}
    >>> out = aggregate(b, np.array([2, 2, 4]))
    >>> out["ts"].tolist(), out["high"].tolist(), out["low"].tolist(), out["volume"].tolist()
    ([2, 4], [6.0, 7.0], [0.2, 0.9], [3.0, 4.0])
    """
    n = len(ends)
    if n == 0:
        return _empty()
    starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
    lasts = np.r_[starts[1:] - 1, n - 1]
    return {
        "ts": ends[starts].astype(np.int64),
        "open": np.asarray(batch["open"], dtype=np.float64)[starts],
        "high": np.maximum.reduceat(np.asarray(batch["high"], dtype=np.float64), starts),
        "low": np.minimum.reduceat(np.asarray(batch["low"], dtype=np.float64), starts),
        "close": np.asarray(batch["close"], dtype=np.float64)[lasts],
        "volume": np.add.reduceat(np.asarray(batch["volume"], dtype=np.float64), starts),
    }


class Resampler:
    """Turns ``src_interval`` bars into closed ``dst_interval`` bars (see the module docstring).

    ``dst_interval`` must be a whole multiple of ``src_interval`` (names such as ``"1m"`` or
    nanoseconds). One instance per symbol; input rows must be in strictly increasing time.

    >>> Resampler("5m", "1h").ratio
    12
    >>> Resampler("1h", "5m")
    Traceback (most recent call last):
    ...
    ValueError: cannot resample 1h bars into 5m bars: 5m is not a whole multiple of 1h
    """

    def __init__(self, src_interval: str | int, dst_interval: str | int, offset: int = 0) -> None:
        self.src = _step(src_interval)
        self.dst = _step(dst_interval)
        if self.dst % self.src or self.dst < self.src:
            raise ValueError(
                f"cannot resample {src_interval} bars into {dst_interval} bars: "
                f"{dst_interval} is not a whole multiple of {src_interval}"
            )
        self.ratio = self.dst // self.src
        self.offset = int(offset)
        self._pending: Batch = _empty()  # rows of the open bucket
        self._last_ts: int | None = None

    @property
    def open_bucket(self) -> int | None:
        """Close time of the bucket still collecting rows, or None.

        >>> r = Resampler(1, 5)
        >>> r.open_bucket is None
        True
        >>> _ = r.update({"ts": np.array([6]), "open": np.ones(1), "high": np.ones(1),
        ...               "low": np.ones(1), "close": np.ones(1), "volume": np.ones(1)})
        >>> r.open_bucket
        10
        """
        ts = self._pending["ts"]
        return int(bucket_ends(ts[:1], self.dst, self.offset)[0]) if len(ts) else None

    def update(self, batch: Batch) -> Batch:
        """Add the next source bars; return the coarse bars this closed (maybe none)."""
        ts = np.asarray(batch["ts"], dtype=np.int64)
        if len(ts) == 0:
            return _empty()
        prev = self._last_ts
        if (prev is not None and ts[0] <= prev) or (len(ts) > 1 and np.any(ts[1:] <= ts[:-1])):
            raise ValueError("resampling needs bars in strictly increasing time")
        self._last_ts = int(ts[-1])
        rows = {c: np.asarray(batch[c]) for c in BAR_COLUMNS}
        if len(self._pending["ts"]):
            rows = {c: np.concatenate([self._pending[c], rows[c]]) for c in BAR_COLUMNS}
        ends = bucket_ends(rows["ts"], self.dst, self.offset)
        # every bucket but the last is closed; the last is closed when its end bar arrived
        last_end = ends[-1]
        cut = len(ends) if rows["ts"][-1] >= last_end else int(np.searchsorted(ends, last_end))
        self._pending = {c: rows[c][cut:] for c in BAR_COLUMNS}
        return aggregate({c: rows[c][:cut] for c in BAR_COLUMNS}, ends[:cut])

    def advance(self, now: int) -> Batch:
        """The clock reached ``now``: emit the open bucket if its end is at or before it.

        >>> r = Resampler(1, 10)
        >>> _ = r.update({"ts": np.array([3]), "open": np.ones(1), "high": np.ones(1),
        ...               "low": np.ones(1), "close": np.ones(1), "volume": np.ones(1)})
        >>> len(r.advance(9)["ts"]), r.advance(10)["ts"].tolist()
        (0, [10])
        """
        end = self.open_bucket
        if end is None or now < end:
            return _empty()
        rows, self._pending = self._pending, _empty()
        return aggregate(rows, np.full(len(rows["ts"]), end, dtype=np.int64))


def resample(batch: Batch, src_interval: str | int, dst_interval: str | int,
             now: int | None = None, offset: int = 0) -> Batch:
    """Resample a whole batch; the last bucket is included only if closed by a bar at its end
    or by ``now``.

    >>> h = 3600 * 10**9
    >>> ts = np.arange(1, 121) * 60 * 10**9               # two hours of 1m bars
    >>> b = {"ts": ts, **{c: np.ones(120) for c in ("open", "high", "low", "close")},
    ...      "volume": np.ones(120)}
    >>> out = resample(b, "1m", "1h")
    >>> (out["ts"] // h).tolist(), out["volume"].tolist()
    ([1, 2], [60.0, 60.0])
    """
    r = Resampler(src_interval, dst_interval, offset)
    out = r.update(batch)
    if now is not None:
        tail = r.advance(now)
        if len(tail["ts"]):
            out = {c: np.concatenate([out[c], tail[c]]) for c in BAR_COLUMNS}
    return out
