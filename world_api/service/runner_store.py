"""The store's part of deploying strategies: their artifacts, and the runners that run them
with their leases (a mixin of :class:`~world_api.service.store.Store`).

A runner heartbeats every few seconds with the strategies it wants to run (every paper or
live strategy of the world that it can run) and a report (lag, last bar per strategy).
:meth:`RunnerStore.heartbeat` grants it, in one transaction that holds the world's row
lock, the leases it may hold: those it holds already, then free or expired ones, up to its
fair share (``ceil(wanted / runners alive)``); a runner over its share gives the rest back,
so a new runner gets some on the next heartbeats. A lease lasts ``ttl``; a runner that
stops heartbeating loses its leases when they expire, and the others take them on their
next heartbeat: a strategy is run by at most one runner at a time, and taken over within
``ttl`` + one heartbeat period (``docs/architecture.md``).

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> store.heartbeat("w", "r1", ["a", "b"], {}, ttl_ns=10**10, now=0)
['a', 'b']
>>> store.heartbeat("w", "r2", ["a", "b"], {}, ttl_ns=10**10, now=1)  # r1 holds both
[]
>>> store.heartbeat("w", "r1", ["a", "b"], {}, ttl_ns=10**10, now=2)  # its share is 1 now
['a']
>>> store.heartbeat("w", "r2", ["a", "b"], {}, ttl_ns=10**10, now=3)
['b']
>>> store.create_world(WorldInfo(id="v"))  # a runner gives up a lease only once its run ended
>>> store.heartbeat("v", "r1", ["a", "b"], {}, ttl_ns=10**10, now=0)
['a', 'b']
>>> store.heartbeat("v", "r2", ["a", "b"], {}, ttl_ns=10**10, now=1)
[]
>>> store.heartbeat("v", "r1", ["a", "b"], {}, 10**10, now=2, running=["a", "b"])
['a']
>>> store.heartbeat("v", "r2", ["a", "b"], {}, ttl_ns=10**10, now=3)  # b still runs on r1
[]
>>> store.heartbeat("v", "r1", ["a", "b"], {}, 10**10, now=4, running=["a"])
['a']
>>> store.heartbeat("v", "r2", ["a", "b"], {}, ttl_ns=10**10, now=5)
['b']
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from world_api.service import tables as t

_a, _r, _l = t.artifacts.c, t.runners.c, t.runner_leases.c


class RunnerStore:
    """Artifacts, runners and leases of a store: a mixin whose host gives ``transaction()``,
    ``db`` and ``_audit`` (see the module docstring).

    >>> from world_api.service.store import Store
    >>> issubclass(Store, RunnerStore)
    True
    """

    transaction: Any
    db: Any
    _audit: Any

    # -- artifacts ---------------------------------------------------------------------------
    def put_artifact(
        self, world: str, doc: dict[str, Any], body: str, actor: str, request_id: str = ""
    ) -> None:
        """Store ``doc`` (a checked artifact, ``body`` its canonical JSON) as its strategy's
        artifact in ``world``, replacing the one before; audited ``put_artifact``."""
        sid = str(doc["strategy_id"])
        row = {
            "world": world,
            "strategy_id": sid,
            "artifact_id": doc["id"],
            "graph_id": doc["graph_id"],
            "kind": doc["kind"],
            "body": body,
            "size": len(body.encode()),
            "actor": actor,
            "updated": time.time_ns(),
        }
        put = self.db.insert(t.artifacts)
        put = put.on_conflict_do_update(
            index_elements=["world", "strategy_id"],
            set_={k: getattr(put.excluded, k) for k in row if k not in ("world", "strategy_id")},
        )
        with self.transaction() as conn:
            conn.execute(put, row)
            self._audit(
                conn,
                world,
                actor,
                "put_artifact",
                {
                    "strategy_id": sid,
                    "artifact_id": doc["id"],
                    "graph_id": doc["graph_id"],
                    "kind": doc["kind"],
                },
                request_id,
            )

    def artifact(self, world: str, sid: str) -> dict[str, Any] | None:
        """The artifact of ``sid`` in ``world`` (None: it has none)."""
        with self.transaction(read_only=True) as conn:
            body = conn.execute(
                select(_a.body).where(_a.world == world, _a.strategy_id == sid)
            ).scalar()
        return None if body is None else dict(json.loads(body))

    def artifact_list(self, world: str) -> list[dict[str, Any]]:
        """Every artifact's row of ``world`` without its body, by strategy id."""
        cols = (_a.strategy_id, _a.artifact_id, _a.graph_id, _a.kind, _a.size, _a.actor, _a.updated)
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(
                select(*cols).where(_a.world == world).order_by(_a.strategy_id)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- runners and leases ------------------------------------------------------------------
    def heartbeat(
        self,
        world: str,
        runner: str,
        want: Sequence[str],
        report: dict[str, Any],
        ttl_ns: int,
        now: int | None = None,
        running: Collection[str] = (),
    ) -> list[str]:
        """Record ``runner``'s heartbeat and report; grant and renew its leases among
        ``want`` (see the module docstring); return the strategies it holds, sorted. A
        lease it loses while it still runs the strategy (``running``) is kept, not renewed,
        until a heartbeat says the run stopped (or it expires): no other runner starts a
        strategy whose run has not ended."""
        now = time.time_ns() if now is None else now
        wanted = sorted(set(want))
        with self.transaction() as conn:
            _lock_world(conn, world)
            self._put_runner(conn, world, runner, now, report)
            alive = (
                conn.execute(select(_r.runner).where(_r.world == world, _r.seen > now - ttl_ns))
                .scalars()
                .all()
            )
            share = math.ceil(len(wanted) / max(1, len(set(alive) | {runner})))
            leases = {
                str(s): (str(r), int(e))
                for s, r, e in conn.execute(
                    select(_l.strategy_id, _l.runner, _l.expires).where(_l.world == world)
                ).all()
            }
            mine = [s for s in wanted if leases.get(s, ("", 0))[0] == runner]
            free = [
                s
                for s in wanted
                if s not in leases or (leases[s][0] != runner and leases[s][1] <= now)
            ]
            granted = sorted((mine + free)[:share])
            drop = [
                s
                for s, (r, _) in leases.items()
                if r == runner and s not in granted and s not in running
            ]
            taken = [s for s in granted if s in leases]
            if drop or taken:
                conn.execute(
                    delete(t.runner_leases).where(
                        _l.world == world, _l.strategy_id.in_(sorted(set(drop) | set(taken)))
                    )
                )
            if granted:
                conn.execute(
                    t.runner_leases.insert(),
                    [
                        {
                            "world": world,
                            "strategy_id": s,
                            "runner": runner,
                            "expires": now + ttl_ns,
                        }
                        for s in granted
                    ],
                )
        return granted

    def _put_runner(
        self, conn: Connection, world: str, runner: str, now: int, report: dict[str, Any]
    ) -> None:
        put = self.db.insert(t.runners)
        put = put.on_conflict_do_update(
            index_elements=["world", "runner"],
            set_={"seen": put.excluded.seen, "body": put.excluded.body},
        )
        conn.execute(
            put,
            {
                "world": world,
                "runner": runner,
                "seen": now,
                "body": json.dumps(report, sort_keys=True),
            },
        )

    def leave(self, world: str, runner: str) -> None:
        """``runner`` stops: its leases are freed at once and its row removed."""
        with self.transaction() as conn:
            _lock_world(conn, world)
            conn.execute(delete(t.runner_leases).where(_l.world == world, _l.runner == runner))
            conn.execute(delete(t.runners).where(_r.world == world, _r.runner == runner))

    def runner_list(self, world: str) -> list[dict[str, Any]]:
        """Each runner of ``world``: its last heartbeat, report and the leases it holds."""
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(
                select(_r.runner, _r.seen, _r.body).where(_r.world == world).order_by(_r.runner)
            ).all()
            leases = conn.execute(
                select(_l.strategy_id, _l.runner, _l.expires).where(_l.world == world)
            ).all()
        held: dict[str, list[str]] = {}
        for s, r, _ in leases:
            held.setdefault(str(r), []).append(str(s))
        return [
            {
                "runner": str(r),
                "seen": int(seen),
                "report": json.loads(body),
                "strategies": sorted(held.get(str(r), [])),
            }
            for r, seen, body in rows
        ]


def _lock_world(conn: Connection, world: str) -> None:
    """Hold ``world``'s row until the transaction ends (PostgreSQL: ``FOR UPDATE``; SQLite's
    ``BEGIN IMMEDIATE`` already holds the database), so that heartbeats grant leases one at
    a time."""
    conn.execute(select(t.worlds.c.seq).where(t.worlds.c.id == world).with_for_update())
