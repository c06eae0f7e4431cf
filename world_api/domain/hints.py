"""The hints of an eligible strategy that is not active: every reason the world's last
selection had to leave it out (an override, a correlation, a dwell, an incumbent within the
hysteresis margin, a proposal that waits for a plan, its rank, or the slots dwelling
incumbents hold), so that no candidate is left without one (see docs/world.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from world_api.domain.overrides import holding
from world_api.domain.strategy_state import StrategyState

if TYPE_CHECKING:
    from world_api.domain.evaluator import WorldEngine


def why_not_active(self: WorldEngine, s: StrategyState, rank: int | None) -> list[str]:
    """Why ``s``, eligible and not active in the engine ``self``, is not active: every
    reason its last selection had (at least one). ``rank``: its rank (None: unranked).

    >>> from world_api.domain.evaluator import WorldEngine
    >>> from world_api.domain.policy import parse_policy
    >>> eng = WorldEngine(parse_policy("allocation: {mode: manual}"))
    >>> _ = eng._add("a"); eng._refresh("a"); _ = eng.reselect()
    >>> why_not_active(eng, eng.strategies["a"], 1)
    ['proposed active (allocation.mode manual): waits for an applied plan']
    """
    p, sid = self.policy, s.sid
    hints: list[str] = []
    override = holding(self.overrides, self.clock()).get(sid) if self.overrides else None
    if override is not None and override.state == "inactive":
        hints.append(f"held out by override: {override.reason}")
    if sid in self._blocked:
        other, rho = self._blocked[sid]
        hints.append(f"correlation {rho:.2f} with {other!r} > max {p.max_correlation:g}")
    left = self._dwell_left(s) if sid in self._recent_out else 0
    if left:
        ago = p.hysteresis.min_dwell_bars - left
        hints.append(
            f"deactivated {ago} world bars ago: min_dwell_bars "
            f"{p.hysteresis.min_dwell_bars} keeps it out {left} more"
        )
    if sid in self._displaced:
        inc, by = self._displaced[sid]
        hints.append(
            f"{inc!r} stays active: {sid}'s score beats it by {by:.2f}, not more "
            f"than hysteresis.margin {p.hysteresis.margin:g}"
        )
    if sid in self._proposed and p.allocation.mode == "manual":
        hints.append("proposed active (allocation.mode manual): waits for an applied plan")
    if rank is not None and rank > p.top_k:
        hints.append(f"rank {rank} > top_k {p.top_k}")
    elif not hints and self._locked_in:
        names = ", ".join(repr(x) for x in self._locked_in)
        left = max(self._dwell_left(self.strategies[x]) for x in self._locked_in)
        verb = "stays" if len(self._locked_in) == 1 else "stay"
        more = "" if len(self._locked_in) == 1 else "at most "
        hints.append(
            f"top_k {p.top_k} is full: {names} {verb} active for min_dwell_bars "
            f"{p.hysteresis.min_dwell_bars} ({more}{left} more world bars)"
        )
    if not hints:  # the selection changed since it was published (a plan not applied)
        hints.append("not in the active set the world last published")
    return hints


def why_out(self: WorldEngine, s: StrategyState) -> str:
    """The reason of the event that deactivates ``s`` in the engine ``self``.

    >>> from world_api.domain.evaluator import WorldEngine
    >>> from world_api.domain.policy import parse_policy
    >>> eng = WorldEngine(parse_policy("min_bars: 5"))
    >>> _ = eng._add("a"); eng._refresh("a")
    >>> why_out(eng, eng.strategies["a"])
    'deactivated: only 0 bars < min_bars 5: extend --start'
    """
    if s.failures:
        return f"deactivated: {s.failures[0]}"
    if s.sid in self._blocked:
        other, rho = self._blocked[s.sid]
        return f"deactivated: correlation {rho:.2f} with {other!r}"
    return f"deactivated: rank {self._rank[self._index[s.sid]]} outside top_k {self.policy.top_k}"
