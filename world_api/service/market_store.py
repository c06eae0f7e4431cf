"""The store's part of a world's market: versions of it, like the policy's (a mixin of
:class:`~world_api.service.store.Store`, like ``operator_store``). Each ``PUT`` stores the
next version, audited; the latest is the world's market.

>>> import tempfile, os
>>> from world_api.domain.market import parse_market
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> store.get_market("w") is None
True
>>> store.put_market("w", parse_market("universe: {symbols: [A, B]}"), "ops")
1
>>> store.get_market("w")[1].universe.symbols
['A', 'B']
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, insert, select

from world_api.domain.market import Market
from world_api.service import tables as t

_m = t.markets.c


class MarketStore:
    """Market versions of a store: a mixin whose host gives ``transaction()``, ``_audit`` and
    ``get_world`` (see the module docstring).

    >>> from world_api.service.store import Store
    >>> issubclass(Store, MarketStore)
    True
    """

    def put_market(
        self: Any, world: str, market: Market, actor: str = "system", request_id: str = ""
    ) -> int:
        """Store ``market`` as ``world``'s next market version (audited); that version."""
        self.get_world(world)
        with self.transaction() as conn:
            # the world's row lock: concurrent PUTs take turns (the key keeps versions unique)
            conn.execute(select(t.worlds.c.seq).where(t.worlds.c.id == world).with_for_update())
            last = conn.execute(select(func.max(_m.version)).where(_m.world == world)).scalar()
            version = int(last or 0) + 1
            body = market.model_dump(mode="json")
            conn.execute(
                insert(t.markets).values(
                    world=world,
                    version=version,
                    body=market.model_dump_json(),
                    created=time.time_ns(),
                )
            )
            self._audit(
                conn, world, actor, "put_market", {"version": version, "market": body}, request_id
            )
        return version

    def get_market(self: Any, world: str, version: int | None = None) -> tuple[int, Market] | None:
        """``(version, market)``: the latest, or the given version; None when the world has
        no market (or not that version)."""
        query = select(_m.version, _m.body).where(_m.world == world)
        query = (
            query.order_by(_m.version.desc())
            if version is None
            else query.where(_m.version == version)
        )
        with self.transaction(read_only=True) as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            return None
        return int(row[0]), Market.model_validate_json(row[1])
