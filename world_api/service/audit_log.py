"""The audit log of a world store: who did what, when, with which request id.

A mixin of :class:`~world_api.service.store.Store`: it needs only the store's
``transaction()``. Rows are written inside the transaction of the change they record
(``_audit``) or on their own (``audit``), and read newest or oldest first with a cursor and
filters (``audit_log``).

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w1"))
>>> store.audit("w1", "ops", "note", {"why": "test"})
>>> [row["action"] for row in store.audit_log("w1", newest_first=True)]
['note', 'create_world']
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, insert, select

from world_api.service import tables as t

_ADD_AUDIT = insert(t.audit)


class AuditLog:
    """Audit rows of a store: a mixin whose host gives ``transaction()`` (a context manager
    yielding a SQLAlchemy connection in one transaction), as
    :class:`~qmtl.core.db.MigratedStore` does.

    >>> from world_api.service.store import Store
    >>> issubclass(Store, AuditLog)
    True
    """

    transaction: Callable[..., AbstractContextManager[Connection]]

    def _audit(
        self,
        conn: Connection,
        world: str | None,
        actor: str,
        action: str,
        detail: dict[str, Any],
        request_id: str,
    ) -> None:
        self._audit_rows(conn, world, [(actor, action, detail, request_id)])

    def _audit_rows(self, conn: Connection, world: str | None,
                    rows: list[tuple[str, str, dict[str, Any], str]]) -> None:
        """Audit rows ``(actor, action, detail, request_id)`` of ``world`` in ``conn``'s
        transaction, in one statement."""
        now = time.time_ns()
        conn.execute(_ADD_AUDIT, [
            {"world": world, "ts": now, "actor": actor, "action": action,
             "detail": json.dumps(detail, default=str), "request_id": request_id}
            for actor, action, detail, request_id in rows
        ])

    def audit(
        self,
        world: str | None,
        actor: str,
        action: str,
        detail: dict[str, Any],
        request_id: str = "",
    ) -> None:
        """Record one audit row on its own."""
        with self.transaction() as conn:
            self._audit(conn, world, actor, action, detail, request_id)

    def audit_log(
        self,
        world: str | None,
        limit: int = 1000,
        *,
        newest_first: bool = False,
        before: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: int | None = None,
        until: int | None = None,
        not_action: str | None = None,
    ) -> list[dict[str, Any]]:
        """The world's audit rows (oldest first, or ``newest_first``), at most ``limit``;
        ``world=None`` gives the service's own rows (tokens made and revoked, failed
        authentications).

        ``actor`` is the token id of whoever acted; ``owner`` beside it is the token's owner
        (None for an actor that is no token id: ``dev``, or a row from before token ids).

        Each row carries its ``id``, increasing with time: ``before`` keeps rows with a
        smaller id (the cursor of the next page of a newest-first listing is the last row's
        id). ``actor``/``action`` keep rows that equal them, ``not_action`` those that do not
        have that action; ``since``/``until`` keep rows
        with ``since <= ts <= until`` (epoch ns).
        """
        a = t.audit.c
        query = (select(a.id, a.ts, a.actor, a.action, a.detail, a.request_id, t.tokens.c.owner)
                 .select_from(t.audit.outerjoin(t.tokens, t.tokens.c.id == a.actor))
                 .where(a.world.is_(None) if world is None else a.world == world))
        if before is not None:
            query = query.where(a.id < before)
        if actor is not None:
            query = query.where(a.actor == actor)
        if action is not None:
            query = query.where(a.action == action)
        if not_action is not None:
            query = query.where(a.action != not_action)
        if since is not None:
            query = query.where(a.ts >= since)
        if until is not None:
            query = query.where(a.ts <= until)
        query = query.order_by(a.id.desc() if newest_first else a.id).limit(limit)
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": int(r[0]),
                "ts": r[1],
                "actor": r[2],
                "action": r[3],
                "detail": json.loads(r[4]),
                "request_id": r[5],
                "owner": r[6],
            }
            for r in rows
        ]
