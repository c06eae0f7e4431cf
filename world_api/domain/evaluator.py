"""The world engine: metric updates in, activation and weight changes out (pure, in memory).

Each :meth:`WorldEngine.ingest` updates one strategy's state (latest metrics, bar count and a
bounded ring of its streamed returns) and re-runs the selection: eligibility (``min_bars``
and gates), a score normalized across eligible candidates, greedy top-k that skips a
candidate too correlated with one already chosen, hysteresis, then allocation and caps. It
returns one :class:`Change` per strategy whose active flag changed or whose weight moved by
at least ``min_change``. Correlations align returns on bar times (``aligned_corr``); the
world's own return is kept as updates arrive (:mod:`world_api.domain.world_returns`).

>>> from qmtl.core.contracts import MetricsUpdate
>>> from world_api.domain.policy import parse_policy
>>> eng = WorldEngine(parse_policy("gates: {sharpe: '>= 1'}\\ntop_k: 1"))
>>> def upd(sid, sharpe, seq=1):
...     return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="backtest",
...                          as_of=seq, n_bars=100, metrics={"sharpe": sharpe},
...                          returns=[(1, 0.01), (2, -0.005), (3, 0.002)])
>>> [(c.strategy_id, c.active, c.weight) for c in eng.ingest(upd("a", 1.5))]
[('a', True, 1.0)]
>>> eng.ingest(upd("b", 0.5))
[]
>>> eng.view("b").hints
['sharpe 0.5 < gate 1']
"""

from __future__ import annotations

import bisect
import math
import time
from typing import Any, Literal

import numpy as np

from qmtl.core.contracts import MetricsUpdate
from world_api.domain import stages
from world_api.domain.allocation import allocate_chosen
from world_api.domain.changes import (
    Change,
    StaleUpdate,
    StrategyView,
    check_after,
    summaries,
)
from world_api.domain.hints import why_not_active, why_out
from world_api.domain.incremental import ScoreBook
from world_api.domain.overrides import Override, holding, pin, relabel, select
from world_api.domain.policy import Policy
from world_api.domain.records import REALIZED, pick
from world_api.domain.scoring import gate_failures, oos_failure
from world_api.domain.silence import tick
from world_api.domain.strategy_state import StrategyState, aligned_corr
from world_api.domain.world_returns import ProForma, ReturnSeries, contribution, pro_forma_report

__all__ = ["Change", "StaleUpdate", "StrategyView", "WorldEngine", "check_after"]


class WorldEngine:
    """Incremental evaluation of a world's policy (see the module docstring).

    Per strategy it keeps a row in numpy arrays (score metrics, eligibility), so an update
    re-checks the gates of one strategy, re-scores everyone with a few vectorized operations,
    and examines only the candidates the greedy pass reaches and the active set.
    """

    def __init__(self, policy: Policy, policy_version: int = 1) -> None:
        self.policy = policy
        self.policy_version = policy_version
        self.strategies: dict[str, StrategyState] = {}
        self.dirty: set[str] = set()
        self._corr_cache: dict[tuple[str, str], tuple[int, int, float]] = {}
        self._ids: list[str] = []
        self._index: dict[str, int] = {}
        self.realized = ReturnSeries()
        self._pro_forma = ProForma()
        # operator overrides (domain/overrides.py) and, in allocation mode manual, the
        # allocation the latest selection proposes (applied by an operator's plan)
        self.overrides: dict[str, Override] = {}
        self.pending: dict[str, float] = {}
        self.clock = time.time_ns
        # the world's clock, from which hysteresis.min_dwell_bars counts: the bars reported
        # to the world, every strategy's new returns (sum of their ``total_returns``)
        self.world_bars = 0
        self._rebuild()

    # -- rows --------------------------------------------------------------------------------
    def _rebuild(self) -> None:
        """Recompute every row (after a policy change or a load)."""
        self._metrics = list(self.policy.score)
        self._weights = np.array([self.policy.score[m] for m in self._metrics])
        # incremental score statistics and lazy ranks (world_api.domain.incremental)
        self._book = ScoreBook(self._weights, self._sid_order())
        for _ in self._ids:
            self._book.add_row()
        self._blocked: dict[str, tuple[str, float]] = {}
        self._capped: set[str] = set()
        self._alloc_memo: tuple[tuple[Any, ...], dict[str, float], set[str]] | None = None
        self._active = {sid for sid, s in self.strategies.items() if s.active}
        self._recent_out = {
            sid
            for sid, s in self.strategies.items()
            if not s.active and s.changed_clock is not None
        }
        self._locked_in: list[str] = []
        self._displaced: dict[str, tuple[str, float]] = {}
        self._proposed: set[str] = set()
        self.world_bars = sum(s.total_returns for s in self.strategies.values())
        for sid in self._ids:
            self._refresh(sid)

    def _add(self, sid: str) -> StrategyState:
        s = self.strategies[sid] = StrategyState(sid)
        self._index[sid] = len(self._ids)
        self._ids.append(sid)
        # ties go by id: the new id's place among the sorted ids, without sorting them again
        # (a sort per new strategy made a world's cost per newcomer grow with its size)
        pos = bisect.bisect_left(self._sorted_ids, sid)
        self._sorted_ids.insert(pos, sid)
        self._book.add_row(pos)
        return s

    def _sid_order(self) -> np.ndarray:
        self._sorted_ids = sorted(self._ids)
        return np.argsort(np.argsort(np.array(self._ids, dtype=object))).astype(np.int64)

    _elig = property(lambda self: self._book.elig)  # views of the ScoreBook's rows
    _score = property(lambda self: self._book.score())
    _rank = property(lambda self: self._book.ranks())

    def _refresh(self, sid: str) -> None:
        s = self.strategies[sid]
        i = self._index[sid]
        # gates and score read the record the policy says (records.pick)
        s.record_stage, s.n_bars = pick(s.records, self.policy.record, self.policy.min_bars)
        s.metrics = s.records.of(s.record_stage).metrics
        s.failures = gate_failures(self.policy, s.n_bars, s.metrics)
        if self.policy.oos_sharpe is not None:
            rec = s.records.of(s.record_stage)
            oos = oos_failure(self.policy, np.fromiter(rec.returns, np.float64),
                              np.fromiter(rec.ts, np.int64))
            if oos is not None:
                s.failures.append(oos)
        if s.silent is not None:
            s.failures.insert(0, s.silent)
        row = [s.metrics.get(m, math.nan) for m in self._metrics]
        self._book.set_row(
            i, np.array([v if math.isfinite(v) else math.nan for v in row]), not s.failures
        )

    # -- inputs ------------------------------------------------------------------------------
    def ingest(self, update: MetricsUpdate) -> list[Change]:
        """Apply one metrics update; return the changes it causes.

        Raises :class:`StaleUpdate` when ``update.seq`` is not greater than the last seq of
        its ``(strategy_id, run_id)``.
        """
        check_after(update, self.last_seq(update.strategy_id, update.run_id))
        s = self.strategies.get(update.strategy_id)
        if s is None:
            s = self._add(update.strategy_id)
        s.seqs[update.run_id] = update.seq
        # the update adds to its own stage's record only (world_api.domain.records)
        s.records.add(
            update.mode,
            update.run_id,
            update.n_bars,
            update.metrics,
            update.returns,
            self.clock(),
        )
        if update.mode in REALIZED:
            # paper and live returns after the latest realized one (a restarted live run may
            # re-send a stretch) earn the world the weight the strategy has now, before this
            # update's own decisions; backtest and shadow returns are never realized
            last = s.realized_ts
            real = [p for p in update.returns if last is None or p[0] > last]
            if real:  # a world whose book reports realizes the book's return instead
                if s.active and self.realized.source == "records":
                    self.realized.add(real, s.weight)
                s.realized_ts = real[-1][0]
        # the strategy's ring (all stages, in time) feeds correlation, volatility and the
        # pro forma: only returns after its latest kept one
        self.world_bars += s.extend(s.fresh(update.returns))
        s.run_bars[update.run_id] = max(update.n_bars, s.run_bars.get(update.run_id, 0))
        s.silent = None  # it reported
        self.dirty.add(s.sid)
        self._refresh(s.sid)
        changes = self._reselect()
        return changes + [Change(**m) for m in stages.on_update(self, s, update)]  # hook: stages

    def book_returns(self, points: list[tuple[int, float]]) -> int:
        """The world's book reports its return per bar (:meth:`ReturnSeries.book`)."""
        return self.realized.book(points)

    def tick(self, now: int) -> list[Change]:
        """The world's clock reads ``now`` (epoch ns): a paper or live strategy silent past
        the policy's ``max_silence`` becomes ineligible, one that reports again eligible
        again (:func:`world_api.domain.silence.tick`); the changes that causes."""
        return self._reselect() if tick(self, now) else []

    def last_seq(self, strategy_id: str, run_id: str) -> int | None:
        """The seq of the last update ingested for ``(strategy_id, run_id)`` (None: none)."""
        s = self.strategies.get(strategy_id)
        return None if s is None else s.seqs.get(run_id)

    def set_policy(self, policy: Policy, version: int) -> list[Change]:
        """Switch to a new policy version and re-run the selection."""
        before, self.policy = self.policy.promotion, policy
        self.policy_version = version
        self._rebuild()
        changes = self._reselect()
        return changes + [Change(**m) for m in stages.on_policy(self, before)]  # hook: stages

    # -- selection ---------------------------------------------------------------------------
    def correlation(self, a: str, b: str) -> float:
        """Correlation of two strategies' streamed returns (NaN with too little overlap)."""
        sa, sb = self.strategies[a], self.strategies[b]
        key = (a, b) if a < b else (b, a)
        first, second = (sa, sb) if a < b else (sb, sa)
        stamp = (first.total_returns, second.total_returns)
        cached = self._corr_cache.get(key)
        if cached is not None and cached[:2] == stamp:
            return cached[2]
        value = aligned_corr(sa, sb)
        self._corr_cache[key] = (*stamp, value)
        return value

    def _dwell_left(self, s: StrategyState) -> int:
        """World bars left before ``s`` may change its active flag again (0: free)."""
        dwell = self.policy.hysteresis.min_dwell_bars
        if dwell <= 0 or s.changed_clock is None:
            return 0
        return max(0, dwell - (self.world_bars - s.changed_clock))

    _dwelling = lambda self, s: self._dwell_left(s) > 0  # noqa: E731

    def _score_of(self, sid: str) -> float:
        return float(self._score[self._index[sid]])

    def _reselect(self) -> list[Change]:
        p = self.policy
        now = self.clock()
        # an override decides its strategy: it takes no slot of top_k and blocks nobody
        held = holding(self.overrides, now) if self.overrides else {}
        order = self._book.order()  # lazily, best first (ScoreBook)
        by_rank = lambda sid: self._book.rank_key(self._index[sid])  # noqa: E731
        self._recent_out = {sid for sid in self._recent_out if self._dwelling(self.strategies[sid])}
        locked_in = sorted(
            (
                sid
                for sid in self._active
                if sid not in held
                and self._elig[self._index[sid]]
                and self._dwelling(self.strategies[sid])
            ),
            key=by_rank,
        )
        locked_out = self._recent_out
        self._blocked = {}
        self._displaced = {}
        self._locked_in = locked_in
        chosen: list[str] = list(locked_in)
        for i in order:
            if len(chosen) >= p.top_k:
                break
            sid = self._ids[i]
            if sid in held or sid in locked_out or sid in chosen or self._is_blocked(sid, chosen):
                continue
            chosen.append(sid)

        # hysteresis: an incumbent stays unless beaten by more than the margin
        margin = p.hysteresis.margin
        if margin > 0:
            incumbents = sorted(
                (
                    sid
                    for sid in self._active
                    if sid not in chosen
                    and sid not in held
                    and sid not in locked_out
                    and self._elig[self._index[sid]]
                ),
                key=by_rank,
            )
            for inc in incumbents:
                newcomers = [c for c in chosen if c not in self._active and c not in locked_in]
                if not newcomers:
                    break
                weakest = min(newcomers, key=lambda c: (self._score_of(c), c))
                if self._score_of(inc) + margin >= self._score_of(weakest):
                    rest = [c for c in chosen if c != weakest]
                    if not self._is_blocked(inc, rest):
                        chosen = [*rest, inc]
                        self._displaced[weakest] = (
                            inc,
                            self._score_of(weakest) - self._score_of(inc),
                        )

        # hook: overrides force strategies in/out and pin weights
        chosen = select(chosen, self.overrides, self.strategies, now)
        weights = pin(self._allocate([self.strategies[sid] for sid in chosen]), self.overrides, now)
        self._proposed = set(weights)
        if self.policy.allocation.mode == "manual":  # hook: wait for an applied plan
            self.pending = weights
            return []
        return relabel(self._changes(weights), self.overrides, now)

    def reselect(self) -> list[Change]:
        """Re-run the selection (after an override changed); return the changes."""
        return self._reselect()

    def _is_blocked(self, sid: str, chosen: list[str]) -> bool:
        limit = self.policy.max_correlation
        if limit >= 1.0:
            return False
        for other in chosen:
            rho = self.correlation(sid, other)
            if not math.isnan(rho) and abs(rho) > limit:
                self._blocked[sid] = (other, rho)
                return True
        return False

    def _allocate(self, chosen: list[StrategyState]) -> dict[str, float]:
        alloc = self.policy.allocation
        # the weights depend only on the chosen strategies' returns (and scores, for the
        # score method): most updates are for other strategies, so reuse the last answer
        key: tuple[Any, ...] = (
            alloc.method,
            alloc.max_weight,
            tuple((s.sid, s.total_returns) for s in chosen),
            tuple(self._score_of(s.sid) for s in chosen) if alloc.method == "score" else (),
        )
        if self._alloc_memo is not None and self._alloc_memo[0] == key:
            self._capped = set(self._alloc_memo[2])
            return dict(self._alloc_memo[1])
        weights = self._allocate_now(chosen)
        self._alloc_memo = (key, dict(weights), set(self._capped))
        return weights

    def _allocate_now(self, chosen: list[StrategyState]) -> dict[str, float]:
        weights, self._capped = allocate_chosen(
            self.policy.allocation,
            chosen,
            [self._score_of(s.sid) for s in chosen],
            self.correlation,
        )
        return weights

    def _changes(self, weights: dict[str, float]) -> list[Change]:
        min_change = self.policy.allocation.min_change
        changes: list[Change] = []
        for sid in sorted(self._active | set(weights)):
            s = self.strategies[sid]
            active = sid in weights
            weight = weights.get(sid, 0.0)
            if active != s.active:
                reason = (
                    f"activated: rank {self._rank[self._index[sid]]} within top_k "
                    f"{self.policy.top_k}"
                    if active
                    else why_out(self, s)
                )
                s.active, s.weight, s.changed_clock = active, weight, self.world_bars
                if active:
                    self._active.add(sid)
                    self._recent_out.discard(sid)
                else:
                    self._active.discard(sid)
                    self._recent_out.add(sid)
                changes.append(Change(strategy_id=sid, active=active, weight=weight, reason=reason))
                self.dirty.add(sid)
            elif active and abs(weight - s.weight) >= max(min_change, 1e-12):
                s.weight = weight
                changes.append(
                    Change(strategy_id=sid, active=True, weight=weight, reason="weight rebalance")
                )
                self.dirty.add(sid)
        return changes

    def proposed_weights(self) -> dict[str, float]:
        """Weights the allocation gives the current active set now, ignoring ``min_change``."""
        active = [self.strategies[sid] for sid in sorted(self._active)]
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
        return {sid: self.strategies[sid].weight for sid in sorted(self._active)}

    def view(self, strategy_id: str) -> StrategyView:
        """The world's view of one strategy (KeyError if it has never reported)."""
        s = self.strategies[strategy_id]
        i = self._index[strategy_id]
        p = self.policy
        rank = int(self._rank[i]) or None
        hints = list(s.failures)
        if not s.failures and not s.active:
            hints += why_not_active(self, s, rank)
        if s.active and strategy_id in self._capped:
            hints.append(f"weight capped at max_weight {p.allocation.max_weight:g}")
        status: Literal["active", "candidate", "rejected"] = (
            "active" if s.active else "rejected" if s.failures else "candidate"
        )
        score = float(self._score[i])
        return StrategyView(
            strategy_id=s.sid,
            status=status,
            active=s.active,
            weight=s.weight if s.active else 0.0,
            rank=rank,
            score=score if math.isfinite(score) else None,
            n_bars=s.n_bars,
            metrics=s.metrics,
            hints=hints,
            contribution=contribution(s, [self.strategies[x] for x in self._active]),
            override=self.overrides.get(strategy_id),
            record=s.record_stage,
            records=summaries(s.records),
            silent=s.silent is not None,
            **stages.view_fields(self, s),  # hook: the strategy's stage
        )

    def views(self) -> list[StrategyView]:
        """Every strategy's view, ranked ones first."""
        ranked = sorted(
            self._ids,
            key=lambda sid: (self._rank[self._index[sid]] == 0, self._rank[self._index[sid]], sid),
        )
        return [self.view(sid) for sid in ranked]

    def pro_forma(self) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
        """``(ts, r, metrics)`` of the world's pro forma return: today's weights over the
        active strategies' kept returns (see :mod:`world_api.domain.world_returns`)."""
        active = [self.strategies[sid] for sid in sorted(self._active)]
        return self._pro_forma.get(active)

    def world_stamp(self) -> tuple[Any, ...]:
        """Changes whenever the realized or the pro forma world return may have moved."""
        return (
            self.realized.version,
            tuple(
                (sid, self.strategies[sid].weight, self.strategies[sid].total_returns)
                for sid in sorted(self._active)
            ),
        )

    def world_metrics(self) -> dict[str, dict[str, Any]]:
        """``{"realized": {"n_bars", "metrics"}, "pro_forma": {...}}`` of the world."""
        active = [self.strategies[sid] for sid in sorted(self._active)]
        return {
            "realized": {"n_bars": len(self.realized), "metrics": self.realized.metrics()},
            "pro_forma": pro_forma_report(active, *self.pro_forma()),
        }

    # -- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """A JSON-serializable snapshot of the whole engine."""
        return {
            "policy": self.policy.model_dump(mode="json"),
            "policy_version": self.policy_version,
            "strategies": {sid: s.to_dict() for sid, s in self.strategies.items()},
            "realized": [[t, r] for t, r in zip(*self.realized.points(), strict=True)],
            "realized_source": self.realized.source,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WorldEngine:
        """Rebuild an engine from :meth:`to_state` (derived ranks and hints recomputed;
        activations and weights are kept as stored)."""
        eng = cls(Policy.model_validate(state["policy"]), int(state["policy_version"]))
        for sid, d in sorted(state.get("strategies", {}).items()):
            eng._add(sid)
            eng.strategies[sid] = StrategyState.from_dict(d)
        points = [(int(t), float(r)) for t, r in state.get("realized", [])]
        eng.realized.load(points, state.get("realized_source", "records"))
        eng.overrides = {
            o["strategy_id"]: Override.model_validate(o) for o in state.get("overrides", [])
        }
        eng._rebuild()
        mode, eng.policy.allocation.mode = eng.policy.allocation.mode, "manual"
        eng._reselect()  # derived state only: the stored allocation (maybe an applied plan) stays
        eng.policy.allocation.mode = mode
        eng.dirty.clear()
        return eng
