"""A world's activation events as Server-Sent Events, read from the store.

Each stored event after the cursor becomes one SSE event: ``id`` = its seq (so a client
resumes with ``Last-Event-ID``), ``event: activation``, ``data`` = the ActivationEvent as
JSON (``event: control`` with a ControlEvent for the steps of a plan apply). The store is
polled every ``poll`` seconds; ``once`` ends the stream when it has caught up.
Keep-alives are sent by the response (see ``routers/events.py``).

>>> import asyncio, tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> async def drain():
...     return [e async for e in activation_events(store, "w", 0, once=True)]
>>> asyncio.run(drain())
[]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from world_api.service.operator_store import as_control
from world_api.service.store import Store

SEP = "\n"
"""Line separator of the stream (what it always used)."""

KEEP_ALIVE = "keep-alive"
"""The event name of keep-alives (no data): the world is there and nothing changed."""


def keep_alive() -> ServerSentEvent:
    """A keep-alive event.

    >>> keep_alive().encode()
    b'event: keep-alive\\n\\n'
    """
    return ServerSentEvent(event=KEEP_ALIVE, sep=SEP)


async def activation_events(
    store: Store, world: str, after: int, *, once: bool = False, poll: float = 0.05
) -> AsyncIterator[ServerSentEvent]:
    """The stored events of ``world`` after seq ``after``, then new ones as they are
    stored (until caught up, with ``once``)."""
    cursor = after
    while True:
        batch = await asyncio.to_thread(store.events_after, world, cursor)
        for ev in batch:
            cursor = ev.seq
            control = as_control(ev)  # a step of a plan apply: its own event name
            yield ServerSentEvent(
                data=(control or ev).model_dump_json(), id=str(ev.seq),
                event="activation" if control is None else "control", sep=SEP
            )
        if batch:
            continue
        if once:
            return
        await asyncio.sleep(poll)
