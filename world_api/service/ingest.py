"""Ingesting metrics updates: a group of requests for one world, written in one transaction
(see :mod:`world_api.service.group_commit`), each request answered as if it were alone.

For each request, in arrival order: an update whose key (strategy, run, seq) is stored
already, or came earlier in the group, is a duplicate (counted, skipped); a fresh update
whose seq is not after its run's last one makes that request a 409 and none of its updates
is applied (checked before anything changes); the rest go through the engine one by one, in
order, exactly as single requests would. Each request gets its own audit row and the events
its updates caused (and, for the records the world's evaluator writes, their evaluation
events: :mod:`world_api.service.evaluation_events`); one store read finds the stored keys
(only for updates the engine cannot tell are new: a seq after its run's last is new), one
transaction stores them all.

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> svc = WorldService(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
>>> svc.store.create_world(WorldInfo(id="w"))
>>> u = MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=1, mode="live", as_of=5,
...                   n_bars=1, metrics={"sharpe": 1.0}, returns=[(5, 0.01)])
>>> who = Actor(id="dev", owner="dev", role="operator", request_id="")
>>> a, b, c = ingest_group(svc, "w", [([u], who), ([u], who),
...                                   ([u.model_copy(update={"seq": 0})], who)])
>>> a["accepted"], b["duplicates"], c.status
(1, 1, 409)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluation import refusal
from world_api.domain.evaluator import Change, StaleUpdate, WorldEngine, check_after
from world_api.domain.market import outside, outside_hint
from world_api.service.broadcast import metrics_event
from world_api.service.deps import Actor
from world_api.service.errors import HTTPError
from world_api.service.evaluation_events import evaluation_body, evaluation_writer, is_evaluation
from world_api.service.ingest_limits import check_new_strategies
from world_api.service.state import WorldService

Request = tuple[list[MetricsUpdate], Actor]
"""One request: its updates and who sent them."""

Key = tuple[str, str, int]


def _stored(
    svc: WorldService, world: str, engine: WorldEngine, requests: Sequence[Request]
) -> set[Key]:
    """The keys of the group's updates that are stored already; asks the store only about
    those the engine cannot tell are new. A strategy the engine does not hold has nothing
    stored (its keys are written with its state, in one transaction, and the engine is
    loaded with every stored state), so a batch of new strategies asks nothing: one query
    per new strategy was most of what a newcomer cost the store."""
    ask = []
    for updates, _ in requests:
        for u in updates:
            if u.strategy_id not in engine.strategies:
                continue
            last = engine.last_seq(u.strategy_id, u.run_id)
            if last is None or u.seq <= last:
                ask.append((u.strategy_id, u.run_id, u.seq))
    return svc.store.seen_keys(world, ask) if ask else set()


def _fresh(
    updates: list[MetricsUpdate],
    engine: WorldEngine,
    taken: set[Key],
    lasts: dict[tuple[str, str], int],
) -> tuple[list[MetricsUpdate], int]:
    """The request's updates not ``taken`` (stored or earlier in the group) and the count of
    duplicates; :class:`StaleUpdate` if one of them is not after its run's last seq (``lasts``
    holds the group's own, updated only when the whole request is fresh)."""
    fresh: list[MetricsUpdate] = []
    mine: dict[tuple[str, str], int] = {}
    seen: set[Key] = set()
    for u in updates:
        key = (u.strategy_id, u.run_id, u.seq)
        if key in taken or key in seen:
            continue
        run = (u.strategy_id, u.run_id)
        last = mine.get(run, lasts.get(run, engine.last_seq(*run)))
        check_after(u, last)
        mine[run] = u.seq
        seen.add(key)
        fresh.append(u)
    lasts.update(mine)
    taken |= seen
    return fresh, len(updates) - len(fresh)


def _symbols(updates: list[MetricsUpdate]) -> set[str]:
    """Every symbol the updates say they trade.

    >>> u = MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=1, mode="backtest",
    ...                   as_of=1, n_bars=1, metrics={}, symbols=["B", "A"])
    >>> sorted(_symbols([u]))
    ['A', 'B']
    """
    return {s for u in updates for s in (u.symbols or ())}


def ingest_group(
    svc: WorldService, world: str, requests: Sequence[Request]
) -> list[dict[str, Any] | Exception]:
    """Apply a group of requests in one write (blocking; runs in a worker thread); one
    outcome per request: its answer, or an :class:`HTTPError` for it alone."""
    outcomes: list[dict[str, Any] | Exception] = []
    counts: list[tuple[int, int, int]] = []  # per answered request: fresh, duplicates, changes
    live: list[tuple[str, dict[str, Any]]] = []  # what the updates stream publishes
    audits: list[tuple[Actor, dict[str, Any]]] = []

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]] | None:
        taken = _stored(svc, world, engine, requests)
        lasts: dict[tuple[str, str], int] = {}
        watched = svc.broadcast.subscribers(world) > 0
        changes: list[Change] = []
        keys: list[Key] = []
        claimed: dict[str, str] = {}  # strategies seen for the first time (ownership.py)
        evaluations: list[dict[str, Any]] = []  # the evaluator's records (evaluation_events)
        version: list[int | None] | None = None  # the market's version, read once if needed
        for updates, who in requests:
            # new strategies: checked before anything of the request changes (422)
            new = {u.strategy_id for u in updates if u.strategy_id not in engine.strategies}
            try:
                check_new_strategies(svc.ingest_limits, new, len(engine.strategies))
            except HTTPError as exc:
                svc.metrics.rejected(world, "limit", len(updates))
                outcomes.append(exc)
                continue
            try:
                claims = svc.owners.claims(world, who, [u.strategy_id for u in updates],
                                           claimed, engine.strategies)
            except HTTPError as exc:
                svc.metrics.rejected(world, "forbidden" if exc.status == 403 else "invalid",
                                     len(updates))
                outcomes.append(exc)
                continue
            evaluation = engine.policy.evaluation
            why = next(filter(None, (refusal(evaluation, world, u.mode, who.role)
                                     for u in updates)), None)
            if why is not None:  # evaluation: world: the world writes backtest records (403)
                svc.metrics.rejected(world, "forbidden", len(updates))
                outcomes.append(HTTPError(403, why))
                continue
            market = svc.market(world)
            extra = outside(market, _symbols(updates)) if market is not None else []
            if extra:  # a world with a market: nothing outside its universe (422)
                svc.metrics.rejected(world, "invalid", len(updates))
                outcomes.append(HTTPError(422, outside_hint(world, market, extra)))
                continue
            try:
                fresh, duplicates = _fresh(updates, engine, taken, lasts)
            except StaleUpdate as exc:
                svc.metrics.rejected(world, "stale", len(updates))
                outcomes.append(HTTPError(409, str(exc)))
                continue
            claimed.update(claims)
            before = len(changes)
            for u in fresh:
                if evaluation == "world" and is_evaluation(u):  # before the record moves
                    if version is None:
                        found = svc.store.get_market(world)
                        version = [found[0] if found is not None else None]
                    evaluations.append(evaluation_body(engine, u, version[0]))
                changes += engine.ingest(u)
                if watched:
                    live.append(("metrics", metrics_event(engine, u)))
            keys += [(u.strategy_id, u.run_id, u.seq) for u in fresh]
            counts.append((len(fresh), duplicates, len(changes) - before))
            outcomes.append({})  # filled once the events have their seqs
            audits.append(
                (
                    who,
                    {
                        "updates": len(fresh),
                        "duplicates": duplicates,
                        "strategies": sorted({u.strategy_id for u in fresh}),
                    },
                )
            )

        if not audits:  # every request was refused before the engine changed
            return None

        own = svc.owners.writer(world, claimed)
        evaluated = evaluation_writer(world, evaluations, svc.clock())  # the world's clock

        def audit(conn: Any, seq: int) -> int:
            own(conn, seq)
            seq = evaluated(conn, seq)  # after the activation events the records caused
            svc.store._audit_rows(
                conn,
                world,
                [(who.name, "post_metrics", detail, who.request_id) for who, detail in audits],
            )
            return seq

        return changes, {"keys": keys, "extra": audit}

    events = svc.write(world, change, live=live)
    answered = iter(counts)
    start = 0
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            continue
        accepted, duplicates, n_changes = next(answered)
        svc.metrics.ingested(world, accepted, duplicates)
        outcome.update(
            accepted=accepted,
            duplicates=duplicates,
            events=[e.model_dump() for e in events[start : start + n_changes]],
        )
        start += n_changes
    return outcomes
