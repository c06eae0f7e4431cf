"""``GET /worlds/{world}/events``: the activation event stream (Server-Sent Events).

Starts after ``?after=`` or the ``Last-Event-ID`` header (a reconnecting client's last
seen seq), else from the first event; ``?once=1`` ends when caught up; a keep-alive event
goes out every ``?heartbeat=`` seconds (default 15) so proxies keep the connection and
subscribers (the order gate) know the world is there.

>>> [r.path for r in router.routes]
['/worlds/{world}/events']
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.event_stream import SEP, activation_events, keep_alive

router = APIRouter(prefix="/worlds/{world}/events", tags=["events"])


@router.get("")
async def events(
    world: str,
    svc: ServiceDep,
    _: ViewerDep,
    after: Annotated[int | None, Query(ge=0)] = None,
    once: bool = False,
    heartbeat: Annotated[float, Query(ge=0.1, le=300.0)] = 15.0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Stream the world's activation events (see the module docstring)."""
    await asyncio.to_thread(svc.store.get_world, world)
    start = after
    if start is None and last_event_id:
        if not last_event_id.strip().isdigit():
            raise HTTPError(422, f"Last-Event-ID must be an event seq, got {last_event_id!r}")
        start = int(last_event_id)
    return EventSourceResponse(
        activation_events(svc.store, world, start or 0, once=once),
        ping=heartbeat,
        ping_message_factory=keep_alive,
        sep=SEP,
        headers={"Cache-Control": "no-cache"},
    )
