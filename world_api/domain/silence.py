"""Silence costs capital: a paper or live strategy whose run stops reporting for longer than
the policy's ``max_silence`` is not eligible (so it loses its weight) until it reports
again (pure; the world's clock ``now`` is given, epoch ns).

A strategy is watched once a paper or live run has reported for it (its paper or live
record has a time of last update) and, when the world manages stages, while it is in
paper or live. Its silence is counted from the latest paper or live update, on the world's
clock. ``max_silence`` in bars is that many bars of the strategy's interval (the median
spacing of its returns); with no interval known yet, it is never silent.

>>> from world_api.domain.policy import parse_policy
>>> from world_api.domain.strategy_state import StrategyState
>>> s = StrategyState("a"); _ = s.records.add("live", "r", 1, {}, [], now=0)
>>> silence_hint(parse_policy("max_silence: 120"), s, 312 * 10**9)
'no update for 312 s > max_silence 120 s'
>>> silence_hint(parse_policy("max_silence: 120"), s, 100 * 10**9) is None
True
"""

from __future__ import annotations

from typing import Any

from world_api.domain.policy import Policy
from world_api.domain.strategy_state import StrategyState

SECOND = 10**9


def watched(s: StrategyState, stages: bool) -> int | None:
    """The time of ``s``'s latest paper or live update if its silence counts (see the
    module docstring; ``stages``: the world manages stages), else None.

    >>> s = StrategyState("a"); _ = s.records.add("backtest", "r", 9, {}, [], now=5)
    >>> watched(s, False) is None
    True
    """
    last = s.records.last_forward()
    if last is None:
        return None
    if stages and s.stage_name not in ("paper", "live"):
        return None
    return last


def silence_hint(policy: Policy, s: StrategyState, now: int) -> str | None:
    """Why ``s`` is silent past ``policy.max_silence`` at ``now`` (None: it is not, or
    the policy has no ``max_silence``).

    >>> from world_api.domain.policy import parse_policy
    >>> s = StrategyState("a"); _ = s.extend([(0, 0.0), (60 * SECOND, 0.0)])
    >>> _ = s.records.add("paper", "r", 2, {}, [], now=0)
    >>> silence_hint(parse_policy("max_silence: 3 bars"), s, 300 * SECOND)
    'no update for 300 s (5 bars) > max_silence 3 bars (180 s)'
    """
    limit = policy.max_silence
    if limit is None:
        return None
    last = watched(s, policy.promotion is not None)
    if last is None:
        return None
    quiet = now - last
    if limit.unit == "s":
        if quiet <= limit.value * SECOND:
            return None
        return f"no update for {quiet // SECOND} s > max_silence {limit.describe()}"
    bar = s.spacing()
    if bar <= 0:
        return None
    allowed = limit.value * bar
    if quiet <= allowed:
        return None
    return (
        f"no update for {quiet // SECOND} s ({quiet / bar:.0f} bars) > max_silence "
        f"{limit.describe()} ({allowed / SECOND:.0f} s)"
    )


def tick(engine: Any, now: int) -> bool:
    """Mark the strategies of ``engine`` (a ``WorldEngine``) that went silent or spoke again
    at ``now`` (their rows refreshed); True when any did (the engine then re-selects). A
    strategy still silent gets its hint's count moved on, nothing else.

    >>> from world_api.domain.evaluator import WorldEngine
    >>> from world_api.domain.policy import parse_policy
    >>> tick(WorldEngine(parse_policy("max_silence: 5")), 0)
    False
    """
    moved = False
    for sid in engine._ids:
        s = engine.strategies[sid]
        hint = silence_hint(engine.policy, s, now)
        if (hint is None) != (s.silent is None):
            s.silent = hint
            engine.dirty.add(sid)
            engine._refresh(sid)
            moved = True
        elif hint is not None and s.failures and s.failures[0] == s.silent:
            s.silent = s.failures[0] = hint  # still silent: its hint counts on
    return moved
