"""``GET /worlds/{world}/events``: the activation event stream (Server-Sent Events).

Starts after ``?after=`` or the ``Last-Event-ID`` header (a reconnecting client's last
seen seq), else from the first event; ``?once=1`` ends when caught up; a keep-alive event
goes out every ``?heartbeat=`` seconds (default 15) so proxies keep the connection and
subscribers (the order gate) know the world is there. A stream ends with its token: once
the token is revoked or expires, a last ``event: error`` says which (``stream_auth.py``).

>>> [r.path for r in router.routes]
['/worlds/{world}/events']
"""

from __future__ import annotations

import asyncio
import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from qmtl.core.contracts import ActivationEvent, ControlEvent, EvaluationEvent, WorldId
from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.event_feed import Closing
from world_api.service.event_stream import KEEP_ALIVE, SEP, activation_events, keep_alive
from world_api.service.openapi import sse_responses
from world_api.service.stream_auth import watched

router = APIRouter(prefix="/worlds/{world}/events", tags=["events"])

MAX_SEQ = (1 << 63) - 1
"""The largest event seq (the stores keep it as a signed 64-bit integer)."""

_SEQ = re.compile(r"[0-9]+")


def parse_last_event_id(value: str) -> int:
    """The seq in a ``Last-Event-ID`` header: ASCII digits only, at most :data:`MAX_SEQ`;
    anything else is an :class:`HTTPError` 422 that says so.

    >>> parse_last_event_id(" 42 ")
    42
    >>> parse_last_event_id("\u00b2")
    Traceback (most recent call last):
    ...
    world_api.service.errors.HTTPError: Last-Event-ID must be an event seq (ASCII digits), got '²'
    >>> try:
    ...     parse_last_event_id(str(1 << 63))
    ... except HTTPError as e:
    ...     print(e.status, e.detail[:35])
    422 Last-Event-ID must be at most 92233
    """
    text = value.strip()
    if not _SEQ.fullmatch(text):
        raise HTTPError(422, f"Last-Event-ID must be an event seq (ASCII digits), got {value!r}")
    if len(text) > 19 or int(text) > MAX_SEQ:
        raise HTTPError(422, f"Last-Event-ID must be at most {MAX_SEQ}, got {value!r}")
    return int(text)


@router.get("", response_class=EventSourceResponse, responses=sse_responses(
    "The world's events, `id:` the seq: activation events (`event: activation`, `data:` the "
    "ActivationEvent as JSON), the steps of a plan apply (`event: control`, a ControlEvent), "
    "the records the world's evaluator writes (`event: evaluation`, an EvaluationEvent) and "
    "keep-alives (`event: keep-alive`, no data); ends with "
    "`event: error` (`data`: `{\"detail\": ..., \"reason\": \"revoked\"}` or `expired`) once "
    "the token is revoked or expires.",
    ActivationEvent | ControlEvent | EvaluationEvent,
    ("activation", "control", "evaluation", KEEP_ALIVE, "error")))
async def events(
    request: Request,
    world: WorldId,
    svc: ServiceDep,
    who: ViewerDep,
    after: Annotated[int | None, Query(ge=0, le=MAX_SEQ)] = None,
    once: bool = False,
    heartbeat: Annotated[float, Query(ge=0.1, le=300.0)] = 15.0,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse:
    """Stream the world's activation events (see the module docstring)."""
    await asyncio.to_thread(svc.store.get_world, world)
    start = after
    if start is None and last_event_id:
        start = parse_last_event_id(last_event_id)
    close = svc.tails.open_stream(who.id)  # 429 past the token's cap
    return EventSourceResponse(
        Closing(watched(request, svc,
                        activation_events(svc.tails, world, start or 0, once=once)), close),
        ping=heartbeat,
        ping_message_factory=keep_alive,
        sep=SEP,
        headers={"Cache-Control": "no-cache"},
    )
