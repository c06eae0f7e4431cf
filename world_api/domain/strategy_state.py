"""One strategy's state in a world (latest metrics, bar count, a bounded ring of its streamed
returns) and the correlation of two strategies' rings.

>>> s = StrategyState("a")
>>> s.returns.extend([0.01, -0.01, 0.02]); s.total_returns = 3
>>> round(s.mean_return(), 4), round(s.vol(), 4)
(0.0067, 0.0153)
>>> StrategyState.from_dict(s.to_dict()).returns == s.returns
True
"""

from __future__ import annotations

import base64
import math
from collections import deque
from typing import Any

import numpy as np

RING = 2_000
"""Streamed returns kept per strategy (for volatility, correlation and contribution)."""

MIN_OVERLAP = 20
"""Periods two strategies must share before their correlation is trusted."""


class StrategyState:
    """What the world keeps of one strategy between updates (see the module docstring)."""

    __slots__ = (
        "active",
        "changed_at",
        "failures",
        "metrics",
        "n_bars",
        "returns",
        "run_bars",
        "seqs",
        "sid",
        "total_returns",
        "vol_cache",
        "weight",
    )

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.metrics: dict[str, float] = {}
        self.n_bars = 0
        self.seqs: dict[str, int] = {}
        self.run_bars: dict[str, int] = {}  # per run: the bar its streamed returns reach
        self.returns: deque[float] = deque(maxlen=RING)
        self.total_returns = 0  # returns ever streamed (index of the ring's end)
        self.active = False
        self.weight = 0.0
        self.changed_at = 0  # n_bars at the last change of the active flag
        self.failures: list[str] = []  # why it is not eligible (gates, min_bars)
        self.vol_cache: tuple[int, float, float] = (-1, math.nan, math.nan)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable form (the ring as base64 float64 bytes)."""
        return {
            "sid": self.sid,
            "metrics": self.metrics,
            "n_bars": self.n_bars,
            "seqs": self.seqs,
            "run_bars": self.run_bars,
            # float64 bytes, base64: exact and ~100x cheaper than a JSON list of floats
            "returns_b64": base64.b64encode(np.asarray(self.returns, dtype="<f8").tobytes()).decode(
                "ascii"
            ),
            "total_returns": self.total_returns,
            "active": self.active,
            "weight": self.weight,
            "changed_at": self.changed_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StrategyState:
        """The state :meth:`to_dict` wrote (also reads the older JSON list of returns)."""
        s = cls(d["sid"])
        s.metrics = dict(d["metrics"])
        s.n_bars = int(d["n_bars"])
        s.seqs = {k: int(v) for k, v in d["seqs"].items()}
        s.run_bars = {k: int(v) for k, v in d.get("run_bars", {}).items()}
        if "returns_b64" in d:
            raw = np.frombuffer(base64.b64decode(d["returns_b64"]), dtype="<f8")
            s.returns = deque(raw.tolist(), maxlen=RING)
        else:
            s.returns = deque(d["returns"], maxlen=RING)
        s.total_returns = int(d["total_returns"])
        s.active = bool(d["active"])
        s.weight = float(d["weight"])
        s.changed_at = int(d["changed_at"])
        return s

    def _moments(self) -> tuple[float, float]:
        """Mean and sample std of the ring, recomputed only when new returns arrived."""
        if self.vol_cache[0] != self.total_returns:
            r = np.asarray(self.returns)
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


def aligned_corr(a: StrategyState, b: StrategyState) -> float:
    """Pearson correlation over the periods both rings hold, aligned by period index."""
    start = max(a.total_returns - len(a.returns), b.total_returns - len(b.returns))
    end = min(a.total_returns, b.total_returns)
    if end - start < MIN_OVERLAP:
        return math.nan
    ra = np.asarray(a.returns)[start - (a.total_returns - len(a.returns)) :][: end - start]
    rb = np.asarray(b.returns)[start - (b.total_returns - len(b.returns)) :][: end - start]
    sa, sb = ra.std(), rb.std()
    if sa == 0 or sb == 0:
        return math.nan
    return float(((ra - ra.mean()) * (rb - rb.mean())).mean() / (sa * sb))
