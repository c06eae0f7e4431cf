"""An open event stream ends with its token: ``/events`` and ``/updates`` re-check the token
they were opened with while they run, and close with a final ``event: error`` once it has
been revoked or has expired.

A request's token is checked once, when it arrives; a stream is one request that may last
for days. So :func:`until_token_ends` asks the service's token cache (``auth.TokenCache``)
every ``every`` seconds (half the token TTL; 1 s with a TTL of 0): an expiry is seen at the
next check, a revocation once the cache reads the store again (at most one store read per
token per TTL, however many streams it holds). The last event is ``event: error`` with
``data: {"detail": "token 3f9a2c1b was revoked at ...", "reason": "revoked"}`` (``reason``
``revoked``, ``expired`` or ``unknown``); a store that cannot be read keeps the stream open
until the next check.

>>> import asyncio, json
>>> async def ticks():
...     for k in range(3):
...         yield k
...         await asyncio.sleep(0.05)
>>> verdicts = iter([None, "token 0a1b2c3d was revoked at 2026-01-01T00:00:00Z"])
>>> async def check():
...     return next(verdicts, None)
>>> async def demo():
...     return [e async for e in until_token_ends(ticks(), check, every=0.04)]
>>> got = asyncio.run(demo())
>>> got[:2], got[-1].event, json.loads(got[-1].data)["reason"]
([0, 1], 'error', 'revoked')
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from sse_starlette import ServerSentEvent

from world_api.service.auth import AuthError
from world_api.service.event_stream import SEP
from world_api.service.state import WorldService
from world_api.service.store import StoreError

MIN_EVERY = 0.25
"""The shortest time between two checks of one stream's token (seconds)."""

Check = Callable[[], Awaitable[str | None]]
"""Why the stream's token may no longer be used (None: it still may)."""


def reason_of(detail: str) -> str:
    """``revoked``, ``expired`` or ``unknown``: the kind of an authentication failure.

    >>> reason_of("token 0a1b2c3d expired at 2026-01-01T00:00:00Z: ask for a new one")
    'expired'
    """
    for reason in ("revoked", "expired"):
        if reason in detail:
            return reason
    return "unknown"


def ended(detail: str) -> ServerSentEvent:
    """The last event of a stream whose token ended.

    >>> ended("token 0a1b2c3d was revoked at 2026-01-01T00:00:00Z").encode()[:13]
    b'event: error\\n'
    """
    data = json.dumps({"detail": detail, "reason": reason_of(detail)})
    return ServerSentEvent(data=data, event="error", sep=SEP)


async def until_token_ends(
    events: AsyncIterator[Any], check: Check, every: float
) -> AsyncIterator[Any]:
    """``events`` until ``check`` says the token ended (asked every ``every`` seconds, also
    while no event comes), then :func:`ended` and the end."""
    source = aiter(events)
    pending: asyncio.Future[Any] | None = None
    due = time.monotonic() + every
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=max(0.0, due - time.monotonic()))
            if time.monotonic() >= due:
                due = time.monotonic() + every
                why = await check()
                if why is not None:
                    yield ended(why)
                    return
            if not done:
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(BaseException):
                await aclose()


def token_check(svc: WorldService, token: str) -> Check:
    """A :data:`Check` of ``token`` through the service's token cache (a store read at most
    once per token TTL); a store that cannot be read is no verdict."""

    async def check() -> str | None:
        try:
            if svc.tokens.lookup(token) is None:
                await asyncio.to_thread(svc.tokens.authenticate, svc.store, token)
        except AuthError as exc:
            return str(exc)
        except StoreError:
            return None
        return None

    return check


def watched(request: Request, svc: WorldService, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """``events`` of a stream opened by ``request``, ended with its token (see the module
    docstring); as they are in insecure dev mode (no tokens)."""
    token = getattr(request.state, "bearer", "")
    if svc.insecure_dev or not token:
        return events
    ttl = svc.tokens.ttl
    return until_token_ends(
        events, token_check(svc, token), max(MIN_EVERY, ttl / 2) if ttl > 0 else 1.0
    )
