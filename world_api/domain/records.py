"""A strategy's track record per stage: one :class:`StageRecord` for each of ``backtest``,
``shadow``, ``paper`` and ``live`` (pure; no I/O).

An update adds to the record of its own stage (its ``mode``) and run; it never touches
another stage's record. A record holds the latest metrics of its stage, the bars of each of
its runs, a bounded ring of its returns with their bar close times, and when the world last
heard from it (the world's clock, epoch ns).

Bars: a backtest covers a history, so a new backtest run replaces the bars of the previous
one (the record's bars are those of its latest run); a forward stage (shadow, paper, live)
grows with every run, so its bars are summed over its runs.

Which record the policy's gates and score read is :func:`pick`: ``record: auto`` (the
default) takes the most advanced stage (live, then paper, then shadow) whose record has at
least ``min_bars`` bars, else the backtest record (or, for a strategy that never sent a
backtest, its most advanced record).

>>> recs = Records()
>>> _ = recs.add("backtest", "bt", 2_000, {"sharpe": 1.2}, [], now=0)
>>> _ = recs.add("paper", "live1", 1, {"sharpe": -3.0}, [], now=5)
>>> pick(recs, "auto", 300)
('backtest', 2000)
>>> recs.of("paper").n_bars, recs.of("backtest").n_bars
(1, 2000)
"""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

RING = 2_000
"""Returns kept per record and per strategy (for volatility, correlation, contribution and
the world's pro forma return)."""

StageName = Literal["backtest", "shadow", "paper", "live"]
ORDER: tuple[StageName, ...] = ("backtest", "shadow", "paper", "live")
"""The stages from least to most advanced."""

REALIZED: tuple[StageName, ...] = ("paper", "live")
"""The stages whose returns the world realizes (orders left for them)."""

FORWARD: tuple[StageName, ...] = ("shadow", "paper", "live")
"""The stages a run builds on new bars (their bars sum over runs)."""

RecordChoice = Literal["auto", "backtest", "shadow", "paper", "live"]


def _b64(values: Iterable[Any], dtype: str) -> str:
    return base64.b64encode(np.asarray(list(values), dtype=dtype).tobytes()).decode("ascii")


def _unb64(text: str, dtype: str) -> list[Any]:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).tolist()


class StageRecord:
    """One stage's record (see the module docstring).

    >>> r = StageRecord("paper"); _ = r.add("a", 3, {}, [(1, 0.1)], 7)
    >>> _ = r.add("b", 4, {}, [], 9)
    >>> r.n_bars, r.last_seen, list(r.ts)
    (7, 9, [1])
    """

    __slots__ = ("last_run", "last_seen", "metrics", "returns", "runs", "stage", "total", "ts")

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.runs: dict[str, int] = {}  # run id -> the bar count its last update reached
        self.last_run: str | None = None
        self.metrics: dict[str, float] = {}
        self.ts: deque[int] = deque(maxlen=RING)
        self.returns: deque[float] = deque(maxlen=RING)
        self.total = 0  # returns ever kept in this record
        self.last_seen: int | None = None  # the world's clock at its latest update (ns)

    @property
    def n_bars(self) -> int:
        """The record's bars: its latest run's for a backtest, summed over runs otherwise."""
        if self.stage not in FORWARD:
            return self.runs.get(self.last_run, 0) if self.last_run is not None else 0
        return sum(self.runs.values())

    def add(
        self,
        run_id: str,
        n_bars: int,
        metrics: dict[str, float],
        returns: list[tuple[int, float]],
        now: int | None,
    ) -> list[tuple[int, float]]:
        """Note one update; return its returns that are new to this record (after its
        latest kept time: a restarted run re-sends a stretch)."""
        self.runs[run_id] = max(n_bars, self.runs.get(run_id, 0))
        self.last_run = run_id
        self.metrics = dict(metrics)
        last = self.ts[-1] if self.ts else None
        new = returns if last is None else [p for p in returns if p[0] > last]
        for t, r in new:
            self.ts.append(int(t))
            self.returns.append(float(r))
        self.total += len(new)
        if now is not None:
            self.last_seen = now
        return new

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable form (the ring as base64 bytes)."""
        return {
            "runs": self.runs,
            "last_run": self.last_run,
            "metrics": self.metrics,
            "ts_b64": _b64(self.ts, "<i8"),
            "returns_b64": _b64(self.returns, "<f8"),
            "total": self.total,
            "last_seen": self.last_seen,
        }

    @classmethod
    def from_dict(cls, stage: str, d: dict[str, Any]) -> StageRecord:
        """The record :meth:`to_dict` wrote; a record stored by the stages of migration 0006
        (only ``runs`` and ``metrics``) has no returns and no time of last update.

        >>> StageRecord.from_dict("paper", {"runs": {"r": 5}, "metrics": {}}).n_bars
        5
        """
        r = cls(stage)
        r.runs = {k: int(v) for k, v in d.get("runs", {}).items()}
        r.last_run = d.get("last_run") or (max(r.runs, key=r.runs.__getitem__) if r.runs else None)
        r.metrics = {k: float(v) for k, v in d.get("metrics", {}).items()}
        ts = _unb64(d["ts_b64"], "<i8") if "ts_b64" in d else []
        rs = _unb64(d["returns_b64"], "<f8") if "returns_b64" in d else []
        if len(ts) != len(rs):
            raise ValueError(f"{stage} record: ring of {len(rs)} returns, {len(ts)} times")
        r.ts.extend(ts)
        r.returns.extend(rs)
        r.total = int(d.get("total", len(ts)))
        seen = d.get("last_seen")
        r.last_seen = None if seen is None else int(seen)
        return r


class Records(dict[str, StageRecord]):
    """A strategy's records by stage (a dict; :meth:`of` gives an empty one for a stage
    without updates)."""

    def add(
        self,
        stage: str,
        run_id: str,
        n_bars: int,
        metrics: dict[str, float],
        returns: list[tuple[int, float]],
        now: int | None,
    ) -> list[tuple[int, float]]:
        """Add an update to ``stage``'s record; its returns new to that record."""
        if stage not in ORDER:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(ORDER)}")
        rec = self.get(stage)
        if rec is None:
            rec = self[stage] = StageRecord(stage)
        return rec.add(run_id, n_bars, metrics, returns, now)

    def of(self, stage: str) -> StageRecord:
        """``stage``'s record (an empty one, not kept, when it has none).

        >>> Records().of("live").n_bars
        0
        """
        return self.get(stage) or StageRecord(stage)

    def last_forward(self) -> int | None:
        """When the world last heard from a paper or live run (None: never).

        >>> r = Records(); _ = r.add("paper", "a", 1, {}, [], 4); r.last_forward()
        4
        """
        seen = [self[s].last_seen for s in REALIZED if s in self]
        seen = [t for t in seen if t is not None]
        return max(seen) if seen else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable form."""
        return {stage: rec.to_dict() for stage, rec in self.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Records:
        """The records :meth:`to_dict` wrote (an unknown stage is an error).

        >>> r = Records(); _ = r.add("live", "a", 2, {"sharpe": 1.0}, [(1, 0.5)], 3)
        >>> Records.from_dict(r.to_dict())["live"].returns
        deque([0.5], maxlen=2000)
        """
        out = cls()
        for stage, rec in d.items():
            if stage not in ORDER:
                raise ValueError(f"unknown stage {stage!r}; known: {', '.join(ORDER)}")
            out[stage] = StageRecord.from_dict(stage, rec)
        return out


def pick(records: Records, choice: str, min_bars: int) -> tuple[str, int]:
    """``(stage, n_bars)`` of the record the policy reads (see the module docstring): with
    ``choice`` a stage, that stage's record; with ``auto``, the most advanced of live, paper
    and shadow with at least ``min_bars`` bars, else the backtest record, else the most
    advanced record there is (``("backtest", 0)`` with none).

    >>> r = Records(); _ = r.add("live", "a", 10, {}, [], None)
    >>> pick(r, "auto", 300), pick(r, "paper", 300)
    (('live', 10), ('paper', 0))
    """
    if choice != "auto":
        return choice, records.of(choice).n_bars
    for stage in reversed(FORWARD):
        rec = records.get(stage)
        if rec is not None and rec.n_bars >= min_bars:
            return stage, rec.n_bars
    if "backtest" in records:
        return "backtest", records["backtest"].n_bars
    for stage in reversed(ORDER):
        if stage in records:
            return stage, records[stage].n_bars
    return "backtest", 0
