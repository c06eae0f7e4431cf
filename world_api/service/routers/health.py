"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, orchestrators and
Prometheus. None takes a world token: ``/healthz`` and ``/readyz`` are public; ``/metrics``
is public unless the app was made with a metrics token (``qmtl world serve
--metrics-token``), which it then wants as ``Authorization: Bearer <metrics token>``.

>>> sorted(r.path for r in router.routes)
['/healthz', '/metrics', '/readyz']
"""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from world_api.service.deps import ServiceDep
from world_api.service.errors import HTTPError
from world_api.service.observability import CONTENT_TYPE
from world_api.service.openapi import error_responses
from world_api.service.store import Store, StoreError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """``/healthz`` and ``/readyz``: ``ok`` or ``ready``, and for ``/readyz`` the store.

    >>> Health(status="ok").store is None
    True
    """

    status: str
    store: str | None = None


def ping(store: Store) -> None:
    """One round trip to the store's database (``SELECT 1``, no lock taken); raises
    :class:`HTTPError` 503 saying why when it fails.

    >>> import tempfile, os
    >>> from world_api.service.store import open_store
    >>> ping(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
    """
    try:
        with store.db.engine.connect() as conn:
            conn.execute(select(1)).scalar()
    except (SQLAlchemyError, StoreError, OSError) as exc:
        cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise HTTPError(503, f"store not reachable ({store.db.url}): {cause}") from None


@router.get("/healthz", response_model=Health, response_model_exclude_none=True)
def healthz() -> Health:
    """The process is up and answering (nothing else is checked)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses=error_responses(
    503, s503="The store cannot be reached; the detail says why."))
async def readyz(svc: ServiceDep) -> Health:
    """Ready to serve: the store answers a query (503 when it does not)."""
    await asyncio.to_thread(ping, svc.store)
    return Health(status="ready", store=svc.store.url)


@router.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text format.",
          "content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}},
    **error_responses(401, s401="The app has a metrics token and the request did not carry "
                                "it as `Authorization: Bearer <token>`.")})
def metrics(request: Request, svc: ServiceDep) -> Response:
    """The service's counters and histograms (see ``world_api/service/observability.py``)."""
    wanted: str | None = getattr(request.app.state, "metrics_token", None)
    if wanted:
        sent = request.headers.get("authorization", "")
        scheme, _, token = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 wanted.encode()):
            raise HTTPError(401, "/metrics needs the metrics token: 'Authorization: Bearer "
                                 "<metrics token>'")
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE)
