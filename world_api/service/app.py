"""The WorldService HTTP API (FastAPI): the app factory.

Every write is authorized by a bearer token's role (viewer < developer < operator, see
``deps.py``) and audited. The endpoints are one router per resource (``routers/``), the
shared state is :class:`world_api.service.state.WorldService`, errors are JSON
``{"detail": ...}`` (``errors.py``).

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> app = create_app(os.path.join(tempfile.mkdtemp(), "w.db"), insecure_dev=True)
>>> client = TestClient(app)
>>> client.post("/worlds", json={"id": "w1", "name": "demo"}).status_code
201
>>> client.get("/worlds/w1/activation").json()["seq"]
0
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from functools import partial

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from world_api.service.applying import recover
from world_api.service.auth import FailureLimiter
from world_api.service.errors import BodyTooLarge, add_error_handlers, error_response
from world_api.service.event_feed import MAX_STREAMS_PER_TOKEN
from world_api.service.group_commit import GroupCommit
from world_api.service.ingest import ingest_group
from world_api.service.ingest_limits import IngestLimits
from world_api.service.kafka_relay import KafkaRelay
from world_api.service.observability import Observe
from world_api.service.openapi import document
from world_api.service.ownership import log_legacy_ids
from world_api.service.routers import ROUTERS, metrics
from world_api.service.routers.metrics import FastIngest
from world_api.service.state import WorldService
from world_api.service.store import Store, open_store
from world_api.service.ticker import DEFAULT_TICK, run_ticker
from world_api.service.ui import install as install_ui

log = logging.getLogger("qmtl.world")
DESCRIPTION = (
    "Every endpoint takes a bearer token (`Authorization: Bearer qmtl_...`, from `qmtl world "
    "token create`) whose role is viewer, developer, runner or operator; this schema "
    "(`/openapi.json`) and its pages (`/docs`, `/redoc`) are public. Errors are "
    "`{\"detail\": \"...\"}`."
)
MAX_BODY = 1 << 20
"""The largest request body accepted (bytes); larger ones get 413."""


class BodyLimit:
    """ASGI middleware that refuses a body whose ``Content-Length`` passes ``limit`` with a
    413 before reading it, and counts a body's bytes as they arrive, raising
    :class:`BodyTooLarge` (413) once they pass ``limit``: a chunked body has no
    Content-Length to check up front, so it is cut off here instead of being read whole.

    >>> BodyLimit(create_app, limit=10).limit
    10
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        size = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if size.isdigit() and int(size) > self.limit:
            response = error_response(
                413, f"request body of {int(size)} bytes exceeds the limit of {self.limit}")
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


class CatchUnexpected:
    """ASGI middleware that answers an error no handler knows with a JSON 500
    ``{"detail": "internal error (request <id>)"}`` and logs it, instead of letting it reach
    the server: uvicorn closes a connection whose app raised, so the client's next request
    on that kept-alive connection was reset. Once a response has started, the error is
    raised on (the response is cut short, so the connection cannot be reused).

    >>> CatchUnexpected(create_app).app is create_app
    True
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception:
            if started:
                raise
            rid = scope.get("state", {}).get("request_id") or uuid.uuid4().hex
            log.exception("unexpected error in %s %s (request %s)",
                          scope.get("method"), scope.get("path"), rid)
            response = error_response(500, f"internal error (request {rid})")
            await response(scope, receive, send)


def create_app(
    store: str | Store | None = None,
    *,
    insecure_dev: bool = False,
    kafka_brokers: str | None = None,
    metrics_token: str | None = None,
    token_ttl: float = 2.0,
    fast_ingest: bool = True,
    max_streams_per_token: int = MAX_STREAMS_PER_TOKEN,
    ingest_limits: IngestLimits | None = None,
    tick: float = DEFAULT_TICK,
) -> FastAPI:
    """The WorldService app over ``store`` (a Store or a URL; default ``~/.qmtl/world.db``).
    With ``kafka_brokers``, activation events are also published to Kafka topics
    ``qmtl.world.<id>.activation`` after they are stored. With ``metrics_token``,
    ``GET /metrics`` wants it as a bearer token (else it is public). A token that
    authenticated is remembered for ``token_ttl`` seconds (a revocation made elsewhere takes
    effect within it; 0 asks the store on every request). ``fast_ingest`` serves
    ``POST /worlds/{world}/metrics`` by its lean ASGI path (``routers/metrics.py``; False:
    through FastAPI's router, the same answers, slower). One token may hold
    ``max_streams_per_token`` event streams open at once (more get 429). ``ingest_limits``
    bound what one metrics request may cause (``ingest_limits.py``; default: from the
    ``QMTL_WORLD_MAX_*`` environment variables). Every ``tick`` seconds the world's clock
    ticks (``ticker.py``: silent strategies lose their weight; 0: never)."""
    backend = store if isinstance(store, Store) else open_store(store)
    relay = None
    if kafka_brokers:
        relay = KafkaRelay(kafka_brokers, backend)
    svc = WorldService(backend, insecure_dev, relay, token_ttl=token_ttl)
    svc.tails.max_per_token = max_streams_per_token
    svc.ingest_limits = ingest_limits or svc.ingest_limits
    # a group writes at most one request's worth of updates (ingest_limits.py)
    svc.ingests = GroupCommit(partial(ingest_group, svc), weigh=lambda item: len(item[0]),
                              max_weight=svc.ingest_limits.max_updates)
    for apply_id, outcome in recover(backend):  # applies a crash left frozen
        log.warning("apply %s interrupted: %s after restart", apply_id, outcome)
    log_legacy_ids(backend)  # ids stored before the id alphabet (ownership.py)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        ticker = asyncio.create_task(run_ticker(svc, tick)) if tick > 0 else None
        yield
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if relay is not None:
            relay.close()

    # /docs and /redoc are served with local assets by the dashboard module (ui.py)
    app = FastAPI(title="QMTL WorldService", version="0.1.0", lifespan=lifespan,
                  description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.service = svc
    app.state.auth_failures = FailureLimiter()
    app.state.metrics_token = metrics_token
    if insecure_dev:
        log.warning("insecure dev mode: no tokens are checked; every caller acts as 'dev'")
    add_error_handlers(app)
    # plain ASGI middlewares (no BaseHTTPMiddleware: it costs a task group per request);
    # the body is read through BodyLimit by the endpoint itself, so its 413 reaches the
    # error handlers as is
    for router in ROUTERS:
        app.include_router(router)
    if fast_ingest:  # innermost: behind the body limit, the error catcher and the timing
        app.add_middleware(FastIngest, svc=svc, route=metrics.router.routes[0])
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(CatchUnexpected)
    app.add_middleware(Observe, metrics=svc.metrics)  # outermost: times every answer
    document(app)  # after the routers: every route gets the error statuses it can answer
    install_ui(app)
    return app
