"""FastAPI dependencies: the shared state, the store, and who is calling with which role.

Endpoints declare what they need with ``Annotated`` types: ``svc: ServiceDep``,
``store: StoreDep``, and one of ``ViewerDep``, ``DeveloperDep``, ``OperatorDep`` for the
caller (an :class:`Actor`; 401 without a known bearer token, 403 when its role ranks below
the one needed; in insecure dev mode everyone is ``dev`` with the operator role).

>>> Actor(name="ci", role="developer", request_id="r1").role
'developer'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from pydantic import BaseModel

from world_api.service.auth import allows, resolve
from world_api.service.errors import HTTPError
from world_api.service.state import WorldService
from world_api.service.store import Store


class Actor(BaseModel):
    """Who is calling: the token's name and role, and the request id."""

    name: str
    role: str
    request_id: str


def get_service(request: Request) -> WorldService:
    """The app's :class:`WorldService`."""
    return request.app.state.service


ServiceDep = Annotated[WorldService, Depends(get_service)]


def get_store(svc: ServiceDep) -> Store:
    """The service's store."""
    return svc.store


StoreDep = Annotated[Store, Depends(get_store)]


def require(needed: str) -> Callable[..., Actor]:
    """A dependency that resolves the caller's bearer token and checks it allows
    ``needed``.

    >>> callable(require("viewer"))
    True
    """

    def check(
        request: Request,
        svc: ServiceDep,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Actor:
        rid = getattr(request.state, "request_id", "")
        if svc.insecure_dev:
            return Actor(name="dev", role="operator", request_id=rid)
        if not authorization or not authorization.lower().startswith("bearer "):
            raise HTTPError(401, "missing bearer token: pass 'Authorization: Bearer <token>'")
        found = resolve(svc.store, authorization[7:].strip())
        if found is None:
            raise HTTPError(401, "unknown token")
        token_role, name = found
        if not allows(token_role, needed):
            raise HTTPError(403, f"role {token_role!r} may not do this; needs {needed!r}")
        return Actor(name=name, role=token_role, request_id=rid)

    check.__name__ = f"require_{needed}"
    return check


ViewerDep = Annotated[Actor, Depends(require("viewer"))]
DeveloperDep = Annotated[Actor, Depends(require("developer"))]
OperatorDep = Annotated[Actor, Depends(require("operator"))]
