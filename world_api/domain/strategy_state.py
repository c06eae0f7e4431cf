"""One strategy's state in a world (latest metrics, bar count, a bounded ring of its streamed
returns with their bar close times) and the correlation of two strategies on time.

>>> s = StrategyState("a")
>>> s.extend([(10, 0.01), (20, -0.01), (30, 0.02)])
3
>>> s.extend([(30, 0.5), (40, 0.0)])   # 30 is known already: only 40 is new
1
>>> round(s.mean_return(), 4), round(s.vol(), 4)
(0.005, 0.0129)
>>> t = StrategyState.from_dict(s.to_dict())
>>> (list(t.ts), list(t.returns)) == (list(s.ts), list(s.returns))
True
"""

from __future__ import annotations

import base64
import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from world_api.domain.records import RING, Records, StageRecord

MIN_OVERLAP = 20
"""Periods two strategies must share before their correlation is trusted."""


def _b64(values: Iterable[Any], dtype: str) -> str:
    # little-endian bytes, base64: exact and ~100x cheaper than a JSON list of numbers
    return base64.b64encode(np.asarray(list(values), dtype=dtype).tobytes()).decode("ascii")


def _unb64(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype)


class StrategyState:
    """What the world keeps of one strategy between updates (see the module docstring)."""

    __slots__ = (
        "active",
        "arr_cache",
        "changed_clock",
        "failures",
        "metrics",
        "n_bars",
        "realized_ts",
        "record_stage",
        "records",
        "returns",
        "run_bars",
        "seqs",
        "sid",
        "silent",
        "stage",
        "total_returns",
        "ts",
        "vol_cache",
        "weight",
    )

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.metrics: dict[str, float] = {}
        self.n_bars = 0
        self.seqs: dict[str, int] = {}
        self.run_bars: dict[str, int] = {}  # per run: the bar count its last update reached
        self.returns: deque[float] = deque(maxlen=RING)
        self.ts: deque[int] = deque(maxlen=RING)  # the close time of each return's bar
        self.total_returns = 0  # returns ever kept (index of the ring's end)
        self.active = False
        self.weight = 0.0
        # the world's clock (WorldEngine.world_bars) at the last change of the active flag
        # (None: never changed), from which hysteresis.min_dwell_bars counts
        self.changed_clock: int | None = None
        self.failures: list[str] = []  # why it is not eligible (gates, min_bars)
        self.stage: Any = None  # its StageState (world_api.domain.stages) or its stored dict
        # its track record per stage (world_api.domain.records); ``metrics`` and ``n_bars``
        # above are those of the record the policy reads (``record_stage``, set by the engine)
        self.records = Records()
        self.record_stage = "backtest"
        self.realized_ts: int | None = None  # the last paper/live return time realized
        self.silent: str | None = None  # why it is silent past max_silence (None: it is not)
        self.vol_cache: tuple[int, float, float] = (-1, math.nan, math.nan)
        self.arr_cache: tuple[int, np.ndarray, np.ndarray, int] | None = None

    @property
    def last_ts(self) -> int | None:
        """The time of the latest kept return (None before any)."""
        return self.ts[-1] if self.ts else None

    def fresh(self, pairs: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """The pairs of an update (times strictly increasing) after the latest kept return:
        a return at or before it is known already (a restarted run sends a stretch again)
        and is dropped.

        >>> s = StrategyState("a"); _ = s.extend([(5, 0.1)])
        >>> s.fresh([(4, 0.0), (5, 0.0), (6, 0.2)])
        [(6, 0.2)]
        """
        last = self.last_ts
        if last is None or not pairs or pairs[0][0] > last:
            return pairs
        return [p for p in pairs if p[0] > last]

    def extend(self, pairs: list[tuple[int, float]]) -> int:
        """Keep the :meth:`fresh` pairs; return how many there were."""
        new = self.fresh(pairs)
        if new:
            ts, rs = zip(*new, strict=True)
            self.ts.extend(ts)
            self.returns.extend(rs)
        self.total_returns += len(new)
        return len(new)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable form (the ring as base64 float64 and int64 bytes)."""
        return {
            "sid": self.sid,
            "metrics": self.metrics,
            "n_bars": self.n_bars,
            "seqs": self.seqs,
            "run_bars": self.run_bars,
            "returns_b64": _b64(self.returns, "<f8"),
            "ts_b64": _b64(self.ts, "<i8"),
            "total_returns": self.total_returns,
            "active": self.active,
            "weight": self.weight,
            "changed_clock": self.changed_clock,
            "records": self.records.to_dict(),
            "realized_ts": self.realized_ts,
            "silent": self.silent,
            **(
                {"stage": self.stage if isinstance(self.stage, dict) else self.stage.to_dict()}
                if self.stage is not None
                else {}
            ),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StrategyState:
        """The state :meth:`to_dict` wrote. A state stored before returns carried their times
        (no ``ts_b64``) has its ring dropped: its returns cannot be placed in time, and the
        ring refills from the strategy's next updates (metrics, bars, seqs, activation and
        weight are kept).

        >>> old = StrategyState("a").to_dict(); del old["ts_b64"]
        >>> old["returns"] = [0.1, 0.2]; del old["returns_b64"]
        >>> len(StrategyState.from_dict(old).returns)
        0
        """
        s = cls(d["sid"])
        s.metrics = dict(d["metrics"])
        s.n_bars = int(d["n_bars"])
        s.seqs = {k: int(v) for k, v in d["seqs"].items()}
        s.run_bars = {k: int(v) for k, v in d.get("run_bars", {}).items()}
        if "ts_b64" in d:
            ts = _unb64(d["ts_b64"], "<i8")
            rs = _unb64(d["returns_b64"], "<f8")
            if len(ts) != len(rs):
                raise ValueError(f"strategy {s.sid!r}: ring of {len(rs)} returns, {len(ts)} times")
            s.ts = deque(ts.tolist(), maxlen=RING)
            s.returns = deque(rs.tolist(), maxlen=RING)
        s.total_returns = int(d["total_returns"])
        s.active = bool(d["active"])
        s.weight = float(d["weight"])
        # a state stored before dwell counted on the world's clock has ``changed_at`` (its own
        # bar count) instead: that count cannot be placed on the world's clock, so it does
        # not dwell (its activation and weight are kept)
        clock = d.get("changed_clock")
        s.changed_clock = None if clock is None else int(clock)
        s.stage = d.get("stage")  # read on first use (world_api.domain.stages.state_of)
        s.silent = d.get("silent")
        if "records" in d:
            s.records = Records.from_dict(d["records"])
            rt = d.get("realized_ts")
            s.realized_ts = None if rt is None else int(rt)
        else:
            migrate_records(s)
        return s

    @property
    def stage_name(self) -> str | None:
        """Its stage when the world manages stages (``stage`` set), else None."""
        st = self.stage
        if st is None:
            return None
        return st["stage"] if isinstance(st, dict) else st.stage

    def _arrays(self) -> tuple[int, np.ndarray, np.ndarray, int]:
        """``(stamp, ts, returns, spacing)``, rebuilt only when new returns arrived."""
        if self.arr_cache is None or self.arr_cache[0] != self.total_returns:
            ts = np.fromiter(self.ts, np.int64, len(self.ts))
            r = np.fromiter(self.returns, np.float64, len(self.returns))
            ts.flags.writeable = r.flags.writeable = False  # shared: nobody may change them
            self.arr_cache = (self.total_returns, ts, r, spacing(ts))
        return self.arr_cache

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The ring as read-only ``(ts int64, returns float64)`` arrays.

        >>> s = StrategyState("a"); _ = s.extend([(1, 0.5)])
        >>> [a.tolist() for a in s.arrays()]
        [[1], [0.5]]
        """
        _, ts, r, _ = self._arrays()
        return ts, r

    def spacing(self) -> int:
        """The median gap between the ring's times (its interval; 0 with fewer than two)."""
        return self._arrays()[3]

    def _moments(self) -> tuple[float, float]:
        """Mean and sample std of the ring, recomputed only when new returns arrived."""
        if self.vol_cache[0] != self.total_returns:
            r = self._arrays()[2]
            mean = float(r.mean()) if len(r) else 0.0
            sd = float(r.std(ddof=1)) if len(r) > 1 else math.nan
            self.vol_cache = (self.total_returns, mean, sd)
        return self.vol_cache[1], self.vol_cache[2]

    def mean_return(self) -> float:
        """Mean of the ring's returns (0 when empty)."""
        return self._moments()[0]

    def vol(self) -> float:
        """Sample standard deviation of the ring's returns (NaN with fewer than two)."""
        return self._moments()[1]


def migrate_records(s: StrategyState) -> None:
    """Give a state stored before records per stage (no ``records``) its records: those the
    stages of migration 0006 kept (bars per run and latest metrics, per mode), else its
    latest metrics and bars as its backtest record. The ring it has (one for all modes) has
    been realized already: ``realized_ts`` is its last time, so nothing is counted twice.

    >>> s = StrategyState("a"); s.metrics = {"sharpe": 1.0}; s.n_bars = 5
    >>> s.run_bars = {"r": 5}; migrate_records(s); s.records["backtest"].n_bars
    5
    """
    stored = s.stage.get("records") if isinstance(s.stage, dict) else None
    if stored:
        s.records = Records.from_dict(stored)
    elif s.n_bars or s.metrics:
        rec = StageRecord("backtest")
        rec.runs = dict(s.run_bars) or {"": s.n_bars}
        rec.last_run = max(rec.runs, key=rec.runs.__getitem__)
        rec.runs = {rec.last_run: s.n_bars}
        rec.metrics = dict(s.metrics)
        s.records = Records({"backtest": rec})
    s.realized_ts = s.last_ts


def spacing(ts: np.ndarray) -> int:
    """The median gap between consecutive times (0 with fewer than two): a series'
    interval, robust to weekends and holidays.

    >>> spacing(np.array([0, 10, 20, 50, 60]))
    10
    """
    if len(ts) < 2:
        return 0
    # sorting integers is fast and steady; np.median's partition slows on many equal gaps
    gaps = np.sort(np.diff(ts))
    n = len(gaps)
    return (int(gaps[(n - 1) // 2]) + int(gaps[n // 2])) // 2  # Python ints: no overflow


def compound_onto(grid: np.ndarray, ts: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The returns ``(ts, r)`` compounded into each bar ``(grid[j-1], grid[j]]`` of a coarser
    grid: ``prod(1 + r) - 1`` over the returns in it (0 when none). Only grid bars the finer
    series covers are kept: those that start at or after its first time and end at or before
    its last. Returns ``(kept grid times, compounded returns)``.

    >>> g = np.array([0, 10, 20, 30])
    >>> t, c = compound_onto(g, np.array([5, 10, 15, 20, 30]), np.array([.1, .1, .5, -.5, 0.]))
    >>> t.tolist(), np.round(c, 6).tolist()   # (0, 10] starts before the finer series
    ([20, 30], [-0.25, 0.0])
    """
    if len(ts) == 0 or len(grid) < 2:
        return grid[:0], r[:0]
    growth = np.concatenate(([1.0], np.cumprod(1.0 + r)))
    idx = np.searchsorted(ts, grid, side="right")  # returns at or before each grid time
    ends = np.arange(1, len(grid))
    keep = (grid[ends - 1] >= ts[0]) & (grid[ends] <= ts[-1])
    ends = ends[keep]
    hi, lo = idx[ends], idx[ends - 1]
    return grid[ends], growth[hi] / growth[lo] - 1.0


def _pearson(ra: np.ndarray, rb: np.ndarray) -> float:
    if len(ra) < MIN_OVERLAP:
        return math.nan
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return math.nan
    return float(((ra - ra.mean()) * (rb - rb.mean())).mean() / (sa * sb))


def aligned_corr(a: StrategyState, b: StrategyState) -> float:
    """Pearson correlation of two strategies' kept returns, aligned on time: over the
    timestamps both hold when their intervals (median spacing) are equal; otherwise on the
    coarser strategy's timestamps, the finer one's returns compounded into each coarser bar
    (see :func:`compound_onto`). NaN with fewer than :data:`MIN_OVERLAP` common periods or no
    spread."""
    ta, ra = a.arrays()
    tb, rb = b.arrays()
    da, db = a.spacing(), b.spacing()
    if da == db:
        if not len(ta) or not len(tb):
            return math.nan
        # both sorted: where each of a's times would sit in b's, and whether it is there
        at = np.minimum(np.searchsorted(tb, ta), len(tb) - 1)
        shared = tb[at] == ta
        return _pearson(ra[shared], rb[at[shared]])
    if da < db:  # make ``a`` the coarser
        ta, ra, tb, rb = tb, rb, ta, ra
    grid, fine = compound_onto(ta, tb, rb)
    coarse = ra[np.searchsorted(ta, grid)]
    return _pearson(coarse, fine)
