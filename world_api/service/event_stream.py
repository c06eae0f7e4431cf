"""A world's activation events as Server-Sent Events, read from the store.

Each stored event after the cursor becomes one SSE event: ``id`` = its seq (so a client
resumes with ``Last-Event-ID``), ``event: activation``, ``data`` = the ActivationEvent as
JSON (``event: control`` with a ControlEvent for the steps of a plan apply, ``event:
evaluation`` with an EvaluationEvent for each record the world's evaluator writes). New events come
through the world's tail (``event_feed.py``: one store reader for every subscriber);
``once`` ends the stream when it has caught up.
Keep-alives are sent by the response (see ``routers/events.py``).

>>> import asyncio, tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> async def drain():
...     return [e async for e in activation_events(Tails(store), "w", 0, once=True)]
>>> asyncio.run(drain())
[]
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sse_starlette import ServerSentEvent

from qmtl.core.contracts import ActivationEvent
from world_api.service.evaluation_events import as_evaluation
from world_api.service.event_feed import Tails
from world_api.service.operator_store import as_control

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
    tails: Tails, world: str, after: int, *, once: bool = False
) -> AsyncIterator[bytes]:
    """The stored events of ``world`` after seq ``after``, then new ones as they are
    stored (until caught up, with ``once``), read through the world's tail; the events
    that arrived together go as one chunk."""
    async for batch in tails.follow(world, after, once=once):
        yield b"".join(encoded(ev) for ev in batch)


_ENCODED: dict[tuple[str, int, int, str, str], bytes] = {}
_ENCODED_MAX = 4096


def encoded(ev: ActivationEvent) -> bytes:
    """The SSE event of ``ev``, encoded once for all the streams that send it (the latest
    :data:`_ENCODED_MAX` are kept).

    >>> ev = ActivationEvent(world="w", seq=3, ts=0, strategy_id="s", active=True,
    ...                      weight=0.5, reason="top_k", policy_version=1)
    >>> encoded(ev).split(b"\\n")[:2], encoded(ev) is encoded(ev)
    ([b'id: 3', b'event: activation'], True)
    """
    # a world made again restarts its seqs; a control or evaluation row's body is its reason
    key = (ev.world, ev.seq, ev.ts, ev.strategy_id, ev.reason)
    sse = _ENCODED.get(key)
    if sse is None:
        control = as_control(ev)  # a step of a plan apply: its own event name
        evaluation = as_evaluation(ev) if control is None else None
        body, name = ((control, "control") if control is not None
                      else (evaluation, "evaluation") if evaluation is not None
                      else (ev, "activation"))
        sse = ServerSentEvent(data=body.model_dump_json(), id=str(ev.seq), event=name,
                              sep=SEP).encode()
        if len(_ENCODED) >= _ENCODED_MAX:
            del _ENCODED[next(iter(_ENCODED))]  # the oldest
        _ENCODED[key] = sse
    return sse
