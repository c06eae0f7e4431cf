"""``qmtl submit`` to a world that evaluates itself (policy ``evaluation: world``): the
client sends the strategy's artifact and no backtest of its own, then waits for the world's
evaluator (``qmtl world evaluate W``) to write the backtest record of that artifact, and
answers the world's decision; past ``timeout`` seconds it answers ``still evaluating``
(the status the world holds so far, ``evaluating=True``, a hint saying how to look later).

A client's own backtest in such a world is a local preview only: ``qmtl submit --dry-run``
or ``qmtl.validate`` (the world would refuse its updates with 403).

>>> world_evaluates('{"evaluation": "world"}'), world_evaluates('{"top_k": 3}')
(True, False)
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from qmtl.artifact import build_artifact
from qmtl.core.contracts import SubmitResult
from qmtl.strategy import Strategy
from qmtl.submit_worlds import HttpWorld, SubmitError
from world_api.domain.evaluation import evaluated
from world_api.domain.market import outside, outside_hint, parse_market

POLL = 0.25
"""Seconds between looks at the strategy's view while waiting."""


def world_evaluates(policy_json: str) -> bool:
    """Whether a policy (``HttpWorld.policy_text``) says ``evaluation: world``."""
    return json.loads(policy_json).get("evaluation") == "world"


def still_evaluating(world: str, aid: str, timeout: float) -> str:
    """The hint of a submit whose evaluation had not finished.

    >>> still_evaluating("w", "ab" * 32, 5)[:40]
    'still evaluating: world w has not writte'
    """
    return (
        f"still evaluating: world {world} has not written the backtest record of "
        f"artifact {aid[:12]} within {timeout:g} s (its evaluator: `qmtl world evaluate "
        f"{world}`); see `qmtl world status {world}` later"
    )


def outside_market(remote: HttpWorld, world: str, symbols: list[str], interval: str) -> str | None:
    """The hint that refuses ``symbols`` outside ``world``'s market, or another
    ``interval`` than its (None: inside, or no market)."""
    try:
        got = remote.market()
    except SubmitError:
        return None
    if got is None:
        return None
    market = parse_market(got["market"])
    if interval != market.interval:
        return (
            f"world {world} evaluates on {market.interval} bars; the strategy's interval "
            f"is {interval}"
        )
    extra = outside(market, symbols)
    return outside_hint(world, market, extra) if extra else None


def submit_for_evaluation(
    s: Strategy,
    sid: str,
    world: str,
    remote: HttpWorld,
    symbols: Sequence[str] | None,
    timeout: float,
    run_id: str,
) -> SubmitResult:
    """Store ``s``'s artifact in ``world`` and wait up to ``timeout`` s for the world's
    evaluation of it (see the module docstring)."""
    doc = build_artifact(s, sid, list(symbols) if symbols else None)
    refused = outside_market(remote, world, list(doc["data"]["symbols"]), s.interval)
    if refused is not None:  # refused before anything is stored, as an update would be
        return SubmitResult(
            world=world,
            strategy_id=sid,
            run_id=run_id,
            status="rejected",
            metrics={},
            contribution=0.0,
            weight=0.0,
            rank=None,
            improvement_hints=[refused],
        )
    remote.store_artifact(doc)
    aid = str(doc["id"])
    deadline = time.monotonic() + timeout
    view: dict[str, Any] | None = None
    while True:
        try:
            view = remote.decision(sid)
        except SubmitError:  # not in the world's engine yet: no record written
            view = None
        runs = (view or {}).get("records", {}).get("backtest", {}).get("runs", [])
        done = evaluated(aid, list(runs))
        if done or time.monotonic() >= deadline:
            break
        time.sleep(POLL)
    hints = [] if done else [still_evaluating(world, aid, timeout)]
    v = view or {}
    return SubmitResult(
        world=world,
        strategy_id=sid,
        run_id=next((r for r in runs if evaluated(aid, [r])), run_id),
        status=v.get("status", "candidate"),
        metrics=v.get("metrics", {}),
        contribution=v.get("contribution", 0.0),
        weight=v.get("weight", 0.0),
        rank=v.get("rank"),
        improvement_hints=list(v.get("hints", [])) + hints,
        n_bars=v.get("n_bars", 0),
        artifact_id=aid,
        evaluating=not done,
    )
