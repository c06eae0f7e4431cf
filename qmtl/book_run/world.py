"""The world's activation as the book reads it: the order gate's own book and verdicts
(:mod:`dataflows.gate`, kept current by :class:`connectors.live.world_link.ActivationSubscriber`),
turned into one ``weights`` event of the ledger. A strategy the gate lets trade is active at
its weight; one it flattens is inactive (the book's policy holds or flattens its part); one it
holds (no connection, a stale or frozen world) is held; a world gone or unknown is not known,
and nothing trades on its last activation.

>>> from dataflows.gate import ActivationBook
>>> b = ActivationBook("w")
>>> b.load_snapshot({"seq": 1, "strategies": [
...     {"strategy_id": "a", "active": True, "weight": 0.6},
...     {"strategy_id": "b", "active": False, "weight": 0.0}]}, now=0.0)
>>> weights_event(b, ["a", "b", "c"], now=1.0, max_age=30.0)
{'kind': 'weights', 'weights': {'a': 0.6}, 'held': ['c'], 'known': True}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dataflows.gate import ActivationBook, verdict


def weights_event(
    book: ActivationBook, strategies: Iterable[str], now: float, max_age: float
) -> dict[str, Any]:
    """The ``weights`` event for ``strategies`` now (see the module docstring)."""
    weights: dict[str, float] = {}
    held: list[str] = []
    for sid in sorted(set(strategies)):
        v = verdict(book, sid, now, max_age)
        if v.kind == "trade":
            weights[sid] = float(v.weight)
        elif v.kind == "hold" and v.cause != "unlisted":
            held.append(sid)
    return {"kind": "weights", "weights": weights, "held": held, "known": book.gone is None}
