"""The world engine: metric updates in, activation and weight changes out (pure, in memory).

Each :meth:`WorldEngine.ingest` updates one strategy's state (latest metrics, bar count and a
bounded ring of its streamed returns) and re-runs the selection: eligibility (``min_bars``
and gates), a score normalized across eligible candidates, greedy top-k that skips a
candidate too correlated with one already chosen, hysteresis, then allocation and caps. It
returns one :class:`Change` per strategy whose active flag changed or whose weight moved by
at least ``min_change``. The per-update cost is the strategy's own state plus the selection
step (sorting candidates; correlations only for the pairs the greedy pass looks at).

Correlations are computed on the strategies' streamed returns aligned by period index since
each strategy's first return, over the last ``RING`` periods (a simplification: the engine
does not see timestamps per return).

>>> from qmtl.contracts import MetricsUpdate
>>> from world_api.policy import parse_policy
>>> eng = WorldEngine(parse_policy("gates: {sharpe: '>= 1'}\\ntop_k: 1"))
>>> def upd(sid, sharpe, seq=1):
...     return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="backtest",
...                          as_of=seq, n_bars=100, metrics={"sharpe": sharpe},
...                          returns=[0.01, -0.005, 0.002])
>>> [(c.strategy_id, c.active, c.weight) for c in eng.ingest(upd("a", 1.5))]
[('a', True, 1.0)]
>>> eng.ingest(upd("b", 0.5))
[]
>>> eng.view("b").hints
['sharpe 0.5 < gate 1']
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel

from qmtl.contracts import MetricsUpdate
from world_api.allocation import allocate, cap_weights
from world_api.policy import Policy

RING = 2_000
"""Streamed returns kept per strategy (for volatility, correlation and contribution)."""

MIN_OVERLAP = 20
"""Periods two strategies must share before their correlation is trusted."""


class Change(BaseModel):
    """A change of one strategy's activation or weight."""

    strategy_id: str
    active: bool
    weight: float
    reason: str


class StrategyView(BaseModel):
    """What the world thinks of one strategy, with concrete hints when it falls short."""

    strategy_id: str
    status: Literal["active", "candidate", "rejected"]
    active: bool
    weight: float
    rank: int | None
    score: float | None
    n_bars: int
    metrics: dict[str, float]
    hints: list[str]
    contribution: float


class StaleUpdate(ValueError):
    """An update's seq is not greater than the last one seen for its (strategy, run)."""


class _Strategy:
    __slots__ = (
        "active",
        "capped",
        "changed_at",
        "corr_block",
        "metrics",
        "n_bars",
        "rank",
        "returns",
        "score",
        "seqs",
        "sid",
        "total_returns",
        "weight",
    )

    def __init__(self, sid: str) -> None:
        self.sid = sid
        self.metrics: dict[str, float] = {}
        self.n_bars = 0
        self.seqs: dict[str, int] = {}
        self.returns: deque[float] = deque(maxlen=RING)
        self.total_returns = 0  # returns ever streamed (index of the ring's end)
        self.active = False
        self.weight = 0.0
        self.changed_at = 0  # n_bars at the last change of the active flag
        self.score: float | None = None
        self.rank: int | None = None
        self.corr_block: tuple[str, float] | None = None
        self.capped = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "metrics": self.metrics,
            "n_bars": self.n_bars,
            "seqs": self.seqs,
            "returns": list(self.returns),
            "total_returns": self.total_returns,
            "active": self.active,
            "weight": self.weight,
            "changed_at": self.changed_at,
            "score": self.score,
            "rank": self.rank,
            "corr_block": list(self.corr_block) if self.corr_block else None,
            "capped": self.capped,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> _Strategy:
        s = cls(d["sid"])
        s.metrics = dict(d["metrics"])
        s.n_bars = int(d["n_bars"])
        s.seqs = {k: int(v) for k, v in d["seqs"].items()}
        s.returns = deque(d["returns"], maxlen=RING)
        s.total_returns = int(d["total_returns"])
        s.active = bool(d["active"])
        s.weight = float(d["weight"])
        s.changed_at = int(d["changed_at"])
        s.score = d["score"]
        s.rank = d["rank"]
        s.corr_block = (d["corr_block"][0], float(d["corr_block"][1])) if d["corr_block"] else None
        s.capped = bool(d["capped"])
        return s

    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else 0.0

    def vol(self) -> float:
        return float(np.std(self.returns, ddof=1)) if len(self.returns) > 1 else math.nan


class WorldEngine:
    """Incremental evaluation of a world's policy (see the module docstring)."""

    def __init__(self, policy: Policy, policy_version: int = 1) -> None:
        self.policy = policy
        self.policy_version = policy_version
        self.strategies: dict[str, _Strategy] = {}
        self.dirty: set[str] = set()
        self._corr_cache: dict[tuple[str, str], tuple[int, int, float]] = {}

    # -- inputs ------------------------------------------------------------------------------
    def ingest(self, update: MetricsUpdate) -> list[Change]:
        """Apply one metrics update; return the changes it causes.

        Raises :class:`StaleUpdate` when ``update.seq`` is not greater than the last seq of
        its ``(strategy_id, run_id)``.
        """
        s = self.strategies.get(update.strategy_id)
        if s is None:
            s = self.strategies[update.strategy_id] = _Strategy(update.strategy_id)
        last = s.seqs.get(update.run_id)
        if last is not None and update.seq <= last:
            raise StaleUpdate(
                f"{update.strategy_id}: seq {update.seq} of run {update.run_id!r} is not after "
                f"the last seen seq {last}"
            )
        s.seqs[update.run_id] = update.seq
        s.metrics = dict(update.metrics)
        s.n_bars = update.n_bars
        s.returns.extend(update.returns)
        s.total_returns += len(update.returns)
        self.dirty.add(s.sid)
        return self._reselect()

    def set_policy(self, policy: Policy, version: int) -> list[Change]:
        """Switch to a new policy version and re-run the selection."""
        self.policy = policy
        self.policy_version = version
        return self._reselect()

    # -- selection ---------------------------------------------------------------------------
    def _gate_failures(self, s: _Strategy) -> list[str]:
        p = self.policy
        out = []
        if s.n_bars < p.min_bars:
            out.append(f"only {s.n_bars} bars < min_bars {p.min_bars}: extend --start")
        for metric, gate in p.gates.items():
            value = s.metrics.get(metric)
            if value is None:
                out.append(f"{metric} missing: the world's gate needs it")
            elif not gate.check(value):
                out.append(gate.describe(metric, value))
        return out

    def _scores(self, eligible: list[_Strategy]) -> dict[str, float]:
        """Score = sum of weight * z-score of each score metric across eligible candidates
        (a metric with no spread contributes 0)."""
        scores = dict.fromkeys((s.sid for s in eligible), 0.0)
        for metric, weight in self.policy.score.items():
            values = np.array([s.metrics.get(metric, math.nan) for s in eligible])
            values = np.where(np.isfinite(values), values, np.nan)
            if np.isnan(values).all():
                continue
            mean, sd = np.nanmean(values), np.nanstd(values)
            for s, v in zip(eligible, values, strict=True):
                z = 0.0 if (np.isnan(v) or sd == 0) else (v - mean) / sd
                if np.isnan(v):
                    z = -3.0  # missing metric: ranked last for it
                scores[s.sid] += weight * float(z)
        return scores

    def correlation(self, a: str, b: str) -> float:
        """Correlation of two strategies' streamed returns (NaN with too little overlap)."""
        sa, sb = self.strategies[a], self.strategies[b]
        key = (a, b) if a < b else (b, a)
        cached = self._corr_cache.get(key)
        stamp = (
            (sa.total_returns, sb.total_returns) if a < b else (sb.total_returns, sa.total_returns)
        )
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        value = _aligned_corr(sa, sb)
        self._corr_cache[key] = (*stamp, value)
        return value

    def _dwelling(self, s: _Strategy) -> bool:
        dwell = self.policy.hysteresis.min_dwell_bars
        return dwell > 0 and s.changed_at > 0 and s.n_bars - s.changed_at < dwell

    def _reselect(self) -> list[Change]:
        p = self.policy
        everyone = list(self.strategies.values())
        eligible = [s for s in everyone if not self._gate_failures(s)]
        scores = self._scores(eligible)
        for s in everyone:
            s.score = scores.get(s.sid)
            s.rank = None
            s.corr_block = None
            s.capped = False
        order = sorted(eligible, key=lambda s: (-scores[s.sid], s.sid))
        for rank, s in enumerate(order, start=1):
            s.rank = rank

        locked_in = [s for s in order if s.active and self._dwelling(s)]
        locked_out = {s.sid for s in order if not s.active and self._dwelling(s)}
        chosen: list[_Strategy] = list(locked_in)
        for s in order:
            if len(chosen) >= p.top_k:
                break
            if s in chosen or s.sid in locked_out:
                continue
            if self._blocked(s, chosen):
                continue
            chosen.append(s)

        # hysteresis: an incumbent stays unless beaten by more than the margin
        margin = p.hysteresis.margin
        if margin > 0:
            for inc in [
                s for s in order if s.active and s not in chosen and s.sid not in locked_out
            ]:
                newcomers = [c for c in chosen if not c.active and c not in locked_in]
                if not newcomers:
                    break
                weakest = min(newcomers, key=lambda c: (scores[c.sid], c.sid))
                if scores[inc.sid] + margin >= scores[weakest.sid]:
                    rest = [c for c in chosen if c is not weakest]
                    if not self._blocked(inc, rest):
                        chosen = [*rest, inc]

        weights = self._allocate(chosen)
        return self._changes(everyone, weights)

    def _blocked(self, s: _Strategy, chosen: list[_Strategy]) -> bool:
        limit = self.policy.max_correlation
        if limit >= 1.0:
            return False
        for c in chosen:
            rho = self.correlation(s.sid, c.sid)
            if not math.isnan(rho) and abs(rho) > limit:
                s.corr_block = (c.sid, rho)
                return True
        return False

    def _allocate(self, chosen: list[_Strategy]) -> dict[str, float]:
        if not chosen:
            return {}
        alloc = self.policy.allocation
        vols = np.array([s.vol() for s in chosen])
        scores = np.array([s.score if s.score is not None else 0.0 for s in chosen])
        cov = None
        if alloc.method in ("risk_parity", "hrp"):
            cov = np.diag(np.where(np.isfinite(vols), vols, 1.0) ** 2)
            for i in range(len(chosen)):
                for j in range(i + 1, len(chosen)):
                    rho = self.correlation(chosen[i].sid, chosen[j].sid)
                    if not math.isnan(rho):
                        cov[i, j] = cov[j, i] = rho * math.sqrt(cov[i, i] * cov[j, j])
        if alloc.method == "score":
            scores = scores - scores.min() + 1e-9 if len(scores) > 1 else np.ones(1)
        raw = allocate(alloc.method, vols=vols, cov=cov, scores=scores, n=len(chosen))
        capped = cap_weights(raw, alloc.max_weight)
        for s, w_raw, w in zip(chosen, raw, capped, strict=True):
            s.capped = bool(w_raw > alloc.max_weight + 1e-12 and w >= alloc.max_weight - 1e-12)
        return {s.sid: float(w) for s, w in zip(chosen, capped, strict=True)}

    def _changes(self, everyone: list[_Strategy], weights: dict[str, float]) -> list[Change]:
        min_change = self.policy.allocation.min_change
        changes: list[Change] = []
        for s in sorted(everyone, key=lambda s: s.sid):
            active = s.sid in weights
            weight = weights.get(s.sid, 0.0)
            if active != s.active:
                reason = (
                    f"activated: rank {s.rank} within top_k {self.policy.top_k}"
                    if active
                    else self._why_out(s)
                )
                s.active, s.weight, s.changed_at = active, weight, s.n_bars
                changes.append(
                    Change(strategy_id=s.sid, active=active, weight=weight, reason=reason)
                )
                self.dirty.add(s.sid)
            elif active and abs(weight - s.weight) >= max(min_change, 1e-12):
                s.weight = weight
                changes.append(
                    Change(strategy_id=s.sid, active=True, weight=weight, reason="weight rebalance")
                )
                self.dirty.add(s.sid)
        return changes

    def _why_out(self, s: _Strategy) -> str:
        fails = self._gate_failures(s)
        if fails:
            return f"deactivated: {fails[0]}"
        if s.corr_block:
            other, rho = s.corr_block
            return f"deactivated: correlation {rho:.2f} with {other!r}"
        return f"deactivated: rank {s.rank} outside top_k {self.policy.top_k}"

    def proposed_weights(self) -> dict[str, float]:
        """Weights the allocation gives the current active set now, ignoring ``min_change``."""
        active = sorted((s for s in self.strategies.values() if s.active), key=lambda s: s.sid)
        return self._allocate(active)

    def apply_weights(self, weights: dict[str, float], reason: str) -> list[Change]:
        """Set the weights of active strategies (an operator's applied plan); return the
        changes. A strategy that is not active cannot be given a weight."""
        for sid in weights:
            s = self.strategies.get(sid)
            if s is None or not s.active:
                raise ValueError(f"strategy {sid!r} is not active in this world")
        changes = []
        for sid, w in sorted(weights.items()):
            s = self.strategies[sid]
            if abs(s.weight - w) > 1e-12:
                s.weight = float(w)
                self.dirty.add(sid)
                changes.append(Change(strategy_id=sid, active=True, weight=float(w), reason=reason))
        return changes

    # -- outputs -----------------------------------------------------------------------------
    def weights(self) -> dict[str, float]:
        """Published weights of the active strategies."""
        return {sid: s.weight for sid, s in sorted(self.strategies.items()) if s.active}

    def view(self, strategy_id: str) -> StrategyView:
        """The world's view of one strategy (KeyError if it has never reported)."""
        s = self.strategies[strategy_id]
        p = self.policy
        fails = self._gate_failures(s)
        hints = list(fails)
        if s.corr_block:
            other, rho = s.corr_block
            hints.append(f"correlation {rho:.2f} with {other!r} > max {p.max_correlation:g}")
        if not fails and not s.active and s.rank is not None and s.rank > p.top_k:
            hints.append(f"rank {s.rank} > top_k {p.top_k}")
        if s.active and s.capped:
            hints.append(f"weight capped at max_weight {p.allocation.max_weight:g}")
        status: Literal["active", "candidate", "rejected"] = (
            "active" if s.active else "rejected" if fails else "candidate"
        )
        return StrategyView(
            strategy_id=s.sid,
            status=status,
            active=s.active,
            weight=s.weight if s.active else 0.0,
            rank=s.rank,
            score=s.score,
            n_bars=s.n_bars,
            metrics=s.metrics,
            hints=hints,
            contribution=self._contribution(s),
        )

    def views(self) -> list[StrategyView]:
        """Every strategy's view, ranked ones first."""
        ranked = sorted(
            self.strategies.values(), key=lambda s: (s.rank is None, s.rank or 0, s.sid)
        )
        return [self.view(s.sid) for s in ranked]

    def _contribution(self, s: _Strategy) -> float:
        if not s.active:
            return 0.0
        total = sum(x.weight * x.mean_return() for x in self.strategies.values() if x.active)
        if total == 0 or not math.isfinite(total):
            return 0.0
        return s.weight * s.mean_return() / total

    # -- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-serializable snapshot of the whole engine."""
        return {
            "policy": self.policy.model_dump(mode="json"),
            "policy_version": self.policy_version,
            "strategies": {sid: s.to_dict() for sid, s in self.strategies.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WorldEngine:
        """Rebuild an engine from :meth:`to_state`."""
        eng = cls(Policy.model_validate(state["policy"]), int(state["policy_version"]))
        eng.strategies = {
            sid: _Strategy.from_dict(d) for sid, d in state.get("strategies", {}).items()
        }
        return eng


def _aligned_corr(a: _Strategy, b: _Strategy) -> float:
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
