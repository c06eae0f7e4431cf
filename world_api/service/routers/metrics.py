"""``POST /worlds/{world}/metrics``: one MetricsUpdate or a list; duplicates (same strategy,
run and seq) are counted and skipped, a stale seq is a 409. Requests that arrive together
are written together (``ingest.py``).

A live run posts one update per bar, so this is the service's busiest request. FastAPI's
routing and dependency solving cost several times the update itself, so the app serves it
through :class:`FastIngest`, a plain ASGI handler in front of the router that does the same
steps with the same functions (the bearer check of ``deps.require``, :func:`ingest_body`,
the error answers of ``errors.py``); the FastAPI route stays, for the schema and for what
the fast path leaves to it (a world id it would refuse, any other method).

>>> [r.path for r in router.routes]
['/worlds/{world}/metrics']
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from qmtl.core.contracts import MetricsUpdate, WorldId
from world_api.domain import strict
from world_api.domain.consistency import Inconsistent, vet
from world_api.service.deps import Actor, DeveloperDep, ServiceDep, bearer, require
from world_api.service.errors import HTTPError, describe, known_error
from world_api.service.ingest_limits import admit
from world_api.service.openapi import error_responses, request_body
from world_api.service.responses import Ingested
from world_api.service.state import WorldService

router = APIRouter(prefix="/worlds/{world}/metrics", tags=["metrics"])
_ONE = TypeAdapter(MetricsUpdate)
_MANY = TypeAdapter(list[MetricsUpdate])


@router.post("", response_model=Ingested, responses=error_responses(409),
             openapi_extra=request_body(
    MetricsUpdate | list[MetricsUpdate], description="One MetricsUpdate, or a list of them."))
async def post_metrics(
    world: WorldId, request: Request, svc: ServiceDep, who: DeveloperDep
) -> Any:
    """Ingest the updates; return how many were accepted and the events they caused."""
    return await ingest_body(svc, world, await request.body(), who)


async def ingest_body(svc: WorldService, world: str, raw: bytes, who: Actor) -> dict[str, Any]:
    """Validate a request body (one update or a list, all for ``world``) and ingest it with
    the requests that arrive with it; the answer (``Ingested``), or an :class:`HTTPError`."""
    adapter: TypeAdapter[Any] = _MANY if raw.lstrip().startswith(b"[") else _ONE
    try:
        parsed = adapter.validate_json(raw)
    except ValidationError as exc:
        known = await asyncio.to_thread(svc.world_exists, world)  # no label per bad path
        svc.metrics.rejected(world, "invalid", known=known)
        raise HTTPError(422, describe(exc.errors())) from None
    try:
        strict.check_json(raw)  # a repeated key would be read as its last value
    except strict.DuplicateKey as exc:
        svc.metrics.rejected(world, "invalid")
        raise HTTPError(422, f"body: {exc}") from None
    updates = parsed if isinstance(parsed, list) else [parsed]
    for u in updates:
        if u.world != world:
            known = await asyncio.to_thread(svc.world_exists, world)
            svc.metrics.rejected(world, "wrong_world", len(updates), known=known)
            raise HTTPError(422, f"update for world {u.world!r} posted to world {world!r}")
    vetted = []
    for i, u in enumerate(updates):  # the world re-checks what it can (consistency.py)
        try:
            vetted.append(vet(u))
        except Inconsistent as exc:
            svc.metrics.rejected(world, "inconsistent", len(updates))
            at = f"[{i}] " if isinstance(parsed, list) else ""
            raise HTTPError(422, f"{at}{exc}") from None
    updates = vetted
    if svc.ingests is None:
        raise RuntimeError("the service has no ingest queue: make the app with create_app")
    admit(svc, world, len(updates))  # 413, 429: ingest_limits.py
    return await svc.ingests.submit(world, (updates, who))


_PATH = re.compile(r"/worlds/([^/\x00-\x1f\x7f]+)/metrics")
_DEVELOPER = require("developer")


class FastIngest:
    """ASGI middleware that serves ``POST /worlds/{world}/metrics`` itself (see the module
    docstring) and passes every other request on to ``app``.

    >>> FastIngest(lambda *a: None, None).route is None
    True
    """

    def __init__(self, app: ASGIApp, svc: WorldService | None, route: Any = None) -> None:
        self.app, self.svc, self.route = app, svc, route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (_PATH.fullmatch(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        if match is None or self.svc is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # the route template, for /metrics' labels
        request = Request(scope, receive)
        try:
            who = await _DEVELOPER(request, self.svc, await bearer(request))
            answer = await ingest_body(self.svc, match.group(1), await request.body(), who)
            response: Response = Response(Ingested.model_validate(answer).model_dump_json(),
                                          media_type="application/json")
        except Exception as exc:
            known = known_error(exc)
            if known is None:
                raise  # CatchUnexpected answers it
            response = known
        await response(scope, receive, send)

