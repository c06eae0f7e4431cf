"""FastAPI dependencies: the shared state, the store, and who is calling with which role.

Endpoints declare what they need with ``Annotated`` types: ``svc: ServiceDep``,
``store: StoreDep``, and one of ``ViewerDep``, ``DeveloperDep``, ``RunnerDep``,
``OperatorDep`` for the caller (an :class:`Actor`; 401 without a token that authenticates,
403 when its role ranks below the one needed; in insecure dev mode everyone is ``dev``
with the operator role).
The token is read with FastAPI's ``HTTPBearer``, so the OpenAPI schema declares the bearer
scheme (Swagger's *Authorize* button). Each 401 and 403 gets an audit row of the service
(``world`` None), at most :class:`~world_api.service.auth.FailureLimiter` allows.

>>> a = Actor(id="0a1b2c3d", owner="ci", role="developer", request_id="r1")
>>> a.name, a.owner
('0a1b2c3d', 'ci')
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from world_api.service.auth import AuthError, FailureLimiter, allows
from world_api.service.errors import HTTPError
from world_api.service.state import WorldService
from world_api.service.store import Store, StoreError


class Actor(BaseModel):
    """Who is calling: the token's public id (what the audit log records as the actor), its
    owner and role, and the request id."""

    id: str
    owner: str
    role: str
    request_id: str

    @property
    def name(self) -> str:
        """The audit log's actor: the token id (owners' names need not be unique)."""
        return self.id


async def get_service(request: Request) -> WorldService:
    """The app's :class:`WorldService` (async: a plain function would cost a worker thread
    per request)."""
    return request.app.state.service


ServiceDep = Annotated[WorldService, Depends(get_service)]


async def get_store(svc: ServiceDep) -> Store:
    """The service's store."""
    return svc.store


StoreDep = Annotated[Store, Depends(get_store)]

# auto_error=False: a missing or non-bearer header gets our own 401 message. HTTPBearer
# compares the scheme case-insensitively, on purpose: RFC 7235 makes auth schemes
# case-insensitive, and clients send "bearer" as well as "Bearer".
bearer = HTTPBearer(auto_error=False, description="A token from `qmtl world token create`.")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]

_DEFAULT_LIMITER = FailureLimiter()


def audit_failure(request: Request, store: Store, status: int, reason: str,
                  actor: str = "-") -> None:
    """Record a failed authentication (401) or a refused role (403) in the service's audit
    log, unless the app's limiter drops it (``app.state.auth_failures``); a store that
    fails here does not change the answer."""
    limiter: FailureLimiter = getattr(request.app.state, "auth_failures", _DEFAULT_LIMITER)
    source = request.client.host if request.client else "-"
    keep, dropped = limiter.allow(source)
    if not keep:
        return
    detail: dict[str, Any] = {"status": status, "reason": reason, "source": source,
                              "method": request.method, "path": request.url.path[:200]}
    if dropped:
        detail["dropped_before"] = dropped
    with contextlib.suppress(StoreError):
        store.audit(None, actor, "auth_failed" if status == 401 else "auth_denied", detail,
                    getattr(request.state, "request_id", ""))


def require(needed: str) -> Callable[..., Actor]:
    """A dependency that authenticates the caller's bearer token and checks its role allows
    ``needed``.

    >>> callable(require("viewer"))
    True
    """

    async def check(request: Request, svc: ServiceDep, credentials: BearerDep = None) -> Actor:
        rid = getattr(request.state, "request_id", "")
        if svc.insecure_dev:
            return Actor(id="dev", owner="dev", role="operator", request_id=rid)
        token = credentials.credentials.strip() if credentials is not None else ""
        try:
            if not token:
                raise AuthError("missing bearer token")
            # a token seen lately is answered from memory, on the event loop
            info = svc.tokens.lookup(token) or await asyncio.to_thread(
                svc.tokens.authenticate, svc.store, token)
        except AuthError as exc:
            await asyncio.to_thread(audit_failure, request, svc.store, 401, str(exc))
            if not token:
                raise HTTPError(401, "missing bearer token: pass 'Authorization: Bearer "
                                "<token>'") from None
            raise HTTPError(401, str(exc)) from None
        request.state.bearer = token  # an event stream re-checks it (stream_auth.py)
        if not allows(info.role, needed):
            reason = f"role {info.role!r} may not do this; needs {needed!r}"
            await asyncio.to_thread(audit_failure, request, svc.store, 403, reason, info.id)
            raise HTTPError(403, reason)
        return Actor(id=info.id, owner=info.owner, role=info.role, request_id=rid)

    check.__name__ = f"require_{needed}"
    return check


ViewerDep = Annotated[Actor, Depends(require("viewer"))]
DeveloperDep = Annotated[Actor, Depends(require("developer"))]
RunnerDep = Annotated[Actor, Depends(require("runner"))]
OperatorDep = Annotated[Actor, Depends(require("operator"))]
