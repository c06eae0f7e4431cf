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

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response

from world_api.service.errors import add_error_handlers, error_response
from world_api.service.kafka_relay import KafkaRelay
from world_api.service.routers import ROUTERS
from world_api.service.state import WorldService
from world_api.service.store import Store, open_store

log = logging.getLogger("qmtl.world")
MAX_BODY = 1 << 20
"""The largest request body accepted (bytes); larger ones get 413."""


Handler = Callable[[Request], Awaitable[Response]]


async def _limits(request: Request, call_next: Handler) -> Response:
    """Refuse oversize bodies; give every request an id (``X-Request-ID``, kept if sent)."""
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        return error_response(413, f"request body of {size} bytes exceeds the limit of {MAX_BODY}")
    request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    response = await call_next(request)
    response.headers["X-Request-ID"] = request.state.request_id
    return response


def create_app(
    store: str | Store | None = None,
    *,
    insecure_dev: bool = False,
    kafka_brokers: str | None = None,
) -> FastAPI:
    """The WorldService app over ``store`` (a Store or a URL; default ``~/.qmtl/world.db``).
    With ``kafka_brokers``, activation events are also published to Kafka topics
    ``qmtl.world.<id>.activation`` after they are stored."""
    backend = store if isinstance(store, Store) else open_store(store)
    relay = None
    if kafka_brokers:
        relay = KafkaRelay(kafka_brokers, backend)
    svc = WorldService(backend, insecure_dev, relay)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if relay is not None:
            relay.close()

    app = FastAPI(title="QMTL WorldService", version="0.1.0", lifespan=lifespan)
    app.state.service = svc
    if insecure_dev:
        log.warning("insecure dev mode: no tokens are checked; every caller acts as 'dev'")
    add_error_handlers(app)
    app.middleware("http")(_limits)
    for router in ROUTERS:
        app.include_router(router)
    return app
