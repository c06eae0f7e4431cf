"""Bounds on the work one metrics request can cause, so that no request holds a world.

A world's writes are serialized (one lock, one group commit at a time), so a request that
brings thousands of updates or new strategies makes every other writer of that world wait
for it. :class:`IngestLimits` bounds it:

| limit | default | env var | refused with |
|---|---|---|---|
| ``max_updates`` per request | 1,000 | ``QMTL_WORLD_MAX_UPDATES`` | 413 |
| ``max_new_strategies`` per request | 100 | ``QMTL_WORLD_MAX_NEW_STRATEGIES`` | 422 |
| ``max_strategies`` per world | 10,000 | ``QMTL_WORLD_MAX_STRATEGIES`` | 422 |
| ``max_queued_updates`` per world | 5,000 | ``QMTL_WORLD_MAX_QUEUED_UPDATES`` | 429 |

The queue bound is what keeps a single update's wait bounded. A request of more than
:data:`SMALL` updates (a batch) is refused when it would take the updates waiting for the
world (and being written) past ``max_queued_updates``; a small one (a live run's bar) may
use a second ``max_queued_updates`` of headroom, so batches cannot crowd it out. One group
commit writes at most ``max_updates`` updates (the app sets it), so a small request waits
behind at most ``2 * max_queued_updates`` updates written in groups of a bounded size, and
a world's cost per new strategy does not grow with the world (``WorldEngine``), however
many batches arrive. A refused request changes nothing. ``qmtl world serve`` takes each
limit as a flag (``--max-updates`` and so on).

>>> limits = IngestLimits(max_updates=2)
>>> try:
...     check_request(limits, 3, queued=0)
... except HTTPError as exc:
...     print(exc.status, exc.detail)
413 a request may carry at most 2 updates (QMTL_WORLD_MAX_UPDATES, --max-updates); ...
>>> check_request(limits, 2, queued=0) is None
True
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from world_api.service.errors import HTTPError

GROUP_UPDATES = 1_000
"""Updates one group commit writes at most (a request larger than this is written alone)."""


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1") from None
    if value < 1:
        raise ValueError(f"{name}={raw!r}: expected a whole number >= 1")
    return value


@dataclass(frozen=True)
class IngestLimits:
    """The bounds of the module docstring (each >= 1).

    >>> IngestLimits.from_env({"QMTL_WORLD_MAX_UPDATES": "50"}).max_updates
    50
    >>> IngestLimits.from_env({"QMTL_WORLD_MAX_STRATEGIES": "0"})
    Traceback (most recent call last):
    ...
    ValueError: QMTL_WORLD_MAX_STRATEGIES='0': expected a whole number >= 1
    """

    max_updates: int = 1_000
    max_new_strategies: int = 100
    max_strategies: int = 10_000
    max_queued_updates: int = 5_000

    def __post_init__(self) -> None:
        for name in ("max_updates", "max_new_strategies", "max_strategies", "max_queued_updates"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected a whole number >= 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> IngestLimits:
        """The limits from ``QMTL_WORLD_MAX_*`` (``os.environ`` by default)."""
        env = os.environ if env is None else env
        d = cls()
        return cls(
            max_updates=_env_int(env, "QMTL_WORLD_MAX_UPDATES", d.max_updates),
            max_new_strategies=_env_int(env, "QMTL_WORLD_MAX_NEW_STRATEGIES", d.max_new_strategies),
            max_strategies=_env_int(env, "QMTL_WORLD_MAX_STRATEGIES", d.max_strategies),
            max_queued_updates=_env_int(env, "QMTL_WORLD_MAX_QUEUED_UPDATES", d.max_queued_updates),
        )


SMALL = 10
"""A request of at most this many updates may use the queue's headroom (see above)."""


def check_request(limits: IngestLimits, n_updates: int, queued: int) -> None:
    """Refuse a request of ``n_updates`` before it is queued: 413 over ``max_updates``, 429
    when the world has ``queued`` updates waiting and this one would take it over
    ``max_queued_updates`` (twice that for a request of at most :data:`SMALL` updates; a
    request arriving at an empty queue is always taken).

    >>> try:
    ...     check_request(IngestLimits(max_queued_updates=10), 11, queued=8)
    ... except HTTPError as exc:
    ...     print(exc.status, exc.detail)
    429 world busy: 8 updates are waiting to be written and 11 more would pass the limit ...
    >>> check_request(IngestLimits(max_queued_updates=10), 1, queued=12) is None  # headroom
    True
    """
    if n_updates > limits.max_updates:
        raise HTTPError(
            413,
            f"a request may carry at most {limits.max_updates} updates "
            f"(QMTL_WORLD_MAX_UPDATES, --max-updates); this one has "
            f"{n_updates}: split it",
        )
    room = limits.max_queued_updates * (2 if n_updates <= SMALL else 1)
    if queued and queued + n_updates > room:
        raise HTTPError(
            429,
            f"world busy: {queued} updates are waiting to be written and "
            f"{n_updates} more would pass the limit of "
            f"{room} (QMTL_WORLD_MAX_QUEUED_UPDATES, "
            "--max-queued-updates): retry shortly",
        )


def admit(svc: Any, world: str, n_updates: int) -> None:
    """:func:`check_request` for a request of ``n_updates`` to ``world`` of the service
    ``svc`` (a ``WorldService`` with its ingest queue); a refused one is counted as
    ``rejected`` with reason ``limit``."""
    try:
        check_request(svc.ingest_limits, n_updates, svc.ingests.queued(world))
    except HTTPError:
        svc.metrics.rejected(world, "limit", n_updates)
        raise


def check_new_strategies(limits: IngestLimits, new: set[str], known: int) -> None:
    """Refuse a request that brings the strategy ids ``new`` to a world that holds
    ``known`` strategies: 422 over ``max_new_strategies`` per request or ``max_strategies``
    per world.

    >>> try:
    ...     check_new_strategies(IngestLimits(max_strategies=3), {"x", "y"}, known=2)
    ... except HTTPError as exc:
    ...     print(exc.status, exc.detail)
    422 the world holds 2 strategies and this request adds 2 new ones: at most 3 per world ...
    """
    if len(new) > limits.max_new_strategies:
        raise HTTPError(
            422,
            f"a request may bring at most {limits.max_new_strategies} new "
            f"strategies (QMTL_WORLD_MAX_NEW_STRATEGIES, "
            f"--max-new-strategies); this one brings {len(new)}: split it",
        )
    if new and known + len(new) > limits.max_strategies:
        raise HTTPError(
            422,
            f"the world holds {known} strategies and this request adds "
            f"{len(new)} new ones: at most {limits.max_strategies} per world "
            "(QMTL_WORLD_MAX_STRATEGIES, --max-strategies)",
        )
