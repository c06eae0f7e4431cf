"""Who owns a strategy, and who may submit to a world.

A strategy id belongs, in each world, to the token owner that first submitted an update
for it (stored in ``strategy_owners`` in the transaction that first stores the strategy).
A developer whose token has another owner gets 403 naming the owner; so does a developer
on an operator-owned strategy (``owner`` NULL: from a store migrated without a known first
submitter, see migration 0007). Operators may post to any strategy (unchanged), and
transfer one (``PUT .../owner``, audited). A world may restrict which owners may submit at
all (``PUT /worlds/{world}/submitters``; no restriction by default); operators are not
restricted. A runner may post to any strategy the world holds (it runs them) and to no
new one. Viewers cannot post, as before.

:class:`OwnerBook` keeps each world's owners in memory (loaded on first use, under the
world's lock); its changes are made inside the write's transaction and dropped with the
engine when a write fails (``WorldService.forget``).

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> from world_api.service.deps import Actor
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> book = OwnerBook(store)
>>> alice = Actor(id="t1", owner="alice", role="developer", request_id="")
>>> book.claims("w", alice, ["s"], {})
{'s': 'alice'}
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Container, Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from world_api.domain.ids import BadId, check_new, legacy_ids
from world_api.service import tables as t
from world_api.service.errors import HTTPError
from world_api.service.store import Store

log = logging.getLogger("qmtl.world")

OPERATOR_OWNED: None = None
"""The owner of a strategy whose first submitter is not known (operators only)."""

_o = t.strategy_owners.c
_s = t.world_submitters.c


class NotOwner(HTTPError):
    """A developer posted to a strategy of another owner (403).

    >>> NotOwner("w", "s", "alice", "bob").status
    403
    >>> "is operator-owned" in str(NotOwner("w", "s", None, "bob"))
    True
    """

    def __init__(self, world: str, sid: str, owner: str | None, who: str) -> None:
        whose = (
            f"belongs to owner {owner!r}"
            if owner is not None
            else "is operator-owned (its first submitter is not known)"
        )
        super().__init__(
            403,
            f"strategy {sid!r} in world {world!r} {whose}; owner {who!r} "
            "may not submit to it (an operator can transfer it: "
            "`qmtl world owner`)",
        )


class OwnerBook:
    """Each world's strategy owners and submitters, cached (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._owners: dict[str, dict[str, str | None]] = {}
        self._submitters: dict[str, list[str] | None] = {}
        self._guard = threading.Lock()

    # -- reading -------------------------------------------------------------------------
    def owners(self, world: str) -> dict[str, str | None]:
        """``strategy_id -> owner`` (None: operator-owned) of ``world``."""
        got = self._owners.get(world)
        if got is None:
            with self.store.transaction(read_only=True) as conn:
                rows = conn.execute(select(_o.strategy_id, _o.owner).where(_o.world == world)).all()
                sub = conn.execute(select(_s.owners).where(_s.world == world)).scalar()
            got = {str(s): (None if o is None else str(o)) for s, o in rows}
            with self._guard:
                self._owners[world] = got
                self._submitters[world] = None if sub is None else list(json.loads(sub))
        return got

    def submitters(self, world: str) -> list[str] | None:
        """The owners who may submit to ``world`` (None: any developer)."""
        self.owners(world)
        return self._submitters.get(world)

    def forget(self, world: str) -> None:
        """Drop ``world``'s cached owners (reloaded on next use)."""
        with self._guard:
            self._owners.pop(world, None)
            self._submitters.pop(world, None)

    # -- checking an ingest --------------------------------------------------------------
    def claims(
        self,
        world: str,
        who: Any,
        sids: Iterable[str],
        pending: dict[str, str],
        known: Container[str] = (),
    ) -> dict[str, str]:
        """The strategies among ``sids`` that ``who`` claims (seen for the first time:
        ``sid -> owner``), or :class:`NotOwner` / 403 when ``who`` may not post to one of
        them, 422 when a new one's id is outside the alphabet (``world_api.domain.ids``).
        ``pending`` holds the claims of earlier requests of the same write; ``known``, the
        strategies the engine has (a known one is not new, whatever its id)."""
        owners = self.owners(world)
        operator = who.role == "operator"
        if who.role == "runner":  # posts for the strategies the world holds, whoever owns them
            for sid in sids:
                if sid not in owners and sid not in pending and sid not in known:
                    raise HTTPError(403, f"a runner posts only for strategies world "
                                         f"{world!r} holds; {sid!r} has never reported")
            return {}
        allowed = self.submitters(world)
        if not operator and allowed is not None and who.owner not in allowed:
            raise HTTPError(
                403,
                f"owner {who.owner!r} may not submit to world {world!r} "
                f"(its submitters: {', '.join(allowed) or 'none'})",
            )
        new: dict[str, str] = {}
        for sid in sids:
            if sid in new:
                continue
            if sid in owners or sid in pending:
                owner = owners[sid] if sid in owners else pending[sid]
                if not operator and owner != who.owner:
                    raise NotOwner(world, sid, owner, who.owner)
                continue
            if sid not in known:
                try:
                    check_new(sid)
                except BadId as exc:
                    raise HTTPError(422, str(exc)) from None
            new[sid] = who.owner
        return new

    def writer(self, world: str, claims: dict[str, str]) -> Any:
        """An ``extra`` step for ``Store.commit``: store ``claims`` (and remember them)."""

        def write(conn: Connection, seq: int) -> int:
            if claims:
                now = time.time_ns()
                conn.execute(
                    insert(t.strategy_owners),
                    [
                        {"world": world, "strategy_id": s, "owner": o, "since": now}
                        for s, o in claims.items()
                    ],
                )
                self.owners(world).update(claims)
            return seq

        return write

    # -- operators' changes --------------------------------------------------------------
    def transfer_writer(self, world: str, sid: str, owner: str | None) -> Any:
        """An ``extra`` step for ``Store.commit`` that gives ``sid`` to ``owner``."""

        def write(conn: Connection, seq: int) -> int:
            conn.execute(delete(t.strategy_owners).where(_o.world == world, _o.strategy_id == sid))
            conn.execute(
                insert(t.strategy_owners).values(
                    world=world, strategy_id=sid, owner=owner, since=time.time_ns()
                )
            )
            self.owners(world)[sid] = owner
            return seq

        return write

    def submitters_writer(self, world: str, owners: list[str] | None) -> Any:
        """An ``extra`` step for ``Store.commit`` that sets ``world``'s submitters."""

        def write(conn: Connection, seq: int) -> int:
            self.owners(world)
            conn.execute(delete(t.world_submitters).where(_s.world == world))
            if owners is not None:
                conn.execute(
                    insert(t.world_submitters).values(world=world, owners=json.dumps(owners))
                )
            self._submitters[world] = owners
            return seq

        return write


def log_legacy_ids(store: Store) -> list[tuple[str, str]]:
    """Log (warning, ``qmtl.world``) the stored strategy ids outside today's alphabet
    (see ``world_api.domain.ids``), once, on start; return them as ``(world, id)``. They
    stay usable through the ``?id=`` routes.

    >>> import tempfile, os
    >>> from world_api.service.store import open_store
    >>> log_legacy_ids(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
    []
    """
    ss = t.strategy_state.c
    with store.transaction(read_only=True) as conn:
        rows = conn.execute(select(ss.world, ss.strategy_id)).all()
    by_world: dict[str, list[str]] = {}
    for w, s in rows:
        by_world.setdefault(str(w), []).append(str(s))
    found = [(w, s) for w in sorted(by_world) for s in legacy_ids(by_world[w])]
    for w, s in found:
        log.warning(
            "world %r: strategy id %r is outside the id alphabet (stored before it); "
            "manage it with the ?id= routes, e.g. GET /worlds/%s/strategy?id=...",
            w,
            s,
            w,
        )
    return found
