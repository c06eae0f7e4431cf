"""Strategy ids in paths: normalized lookups, and ``?id=`` twins of every per-strategy route.

Every route with ``{strategy_id}`` in its path looks the id up in Unicode NFC (how new ids
are stored, ``world_api.domain.ids``), unless the world knows the id exactly as given (an
id stored before ids were normalized). And each has a twin that takes the id as a query
parameter: ``/worlds/{world}/strategies/{strategy_id}/override`` is also
``/worlds/{world}/strategy/override?id=...``. A path segment cannot carry a ``/`` (an
encoded ``%2F`` is decoded before routing), so an id stored with one before the id alphabet
(``evil/slash``) is read, overridden, approved, transferred and cleared through the twins;
``WorldServiceClient`` (and so the CLI) uses them for such ids by itself.

>>> from fastapi import APIRouter
>>> r = APIRouter(prefix="/worlds/{world}")
>>> @r.get("/strategies/{strategy_id}/x")
... def x(world: str, strategy_id: str) -> str:
...     return strategy_id
>>> [route.path for route in twins([r]).routes]
['/worlds/{world}/strategy/x']
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.routing import APIRoute

from world_api.domain.ids import normalize

ID_QUERY = Query(
    alias="id",
    min_length=1,
    max_length=1000,
    description="The strategy id (any id the world holds, also one with `/`).",
)

_COPIED = (
    "response_model",
    "status_code",
    "tags",
    "dependencies",
    "summary",
    "description",
    "response_description",
    "responses",
    "deprecated",
    "methods",
    "response_class",
    "include_in_schema",
    "openapi_extra",
    "response_model_exclude_none",
)


def _lookup(kwargs: dict[str, Any]) -> None:
    """Replace ``kwargs["strategy_id"]`` by its NFC form unless the world knows it as is."""
    sid = kwargs.get("strategy_id")
    if not isinstance(sid, str):
        return
    nfc = normalize(sid)
    if nfc == sid:
        return
    svc, world = kwargs.get("svc"), kwargs.get("world")
    try:
        known = svc is not None and sid in svc.owners.owners(world)
    except Exception:  # an unknown world: the route answers it
        known = False
    if not known:
        kwargs["strategy_id"] = nfc


def _wrap(fn: Callable[..., Any], by_query: bool) -> Callable[..., Any]:
    sig = inspect.signature(fn, eval_str=True)
    params = []
    for p in sig.parameters.values():
        if p.name == "strategy_id" and by_query:
            p = p.replace(annotation=Annotated[str, ID_QUERY])
        params.append(p)

    async def run_async(*args: Any, **kwargs: Any) -> Any:
        _lookup(kwargs)
        return await fn(*args, **kwargs)

    def run_sync(*args: Any, **kwargs: Any) -> Any:
        _lookup(kwargs)
        return fn(*args, **kwargs)

    wrapper: Callable[..., Any] = run_async if inspect.iscoroutinefunction(fn) else run_sync
    functools.update_wrapper(wrapper, fn)
    del wrapper.__wrapped__  # type: ignore[attr-defined]  # FastAPI must read __signature__
    wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    if by_query:
        wrapper.__name__ = f"{fn.__name__}_by_id"
    return wrapper


def _route(route: APIRoute, path: str, by_query: bool) -> APIRoute:
    kw = {k: getattr(route, k) for k in _COPIED}
    kw["methods"] = sorted(route.methods or ())
    endpoint = _wrap(route.endpoint, by_query)
    return APIRoute(path, endpoint, name=endpoint.__name__, **kw)


def _per_strategy(routers: Sequence[APIRouter]) -> list[tuple[APIRouter, int, APIRoute]]:
    return [
        (r, i, route)
        for r in routers
        for i, route in enumerate(r.routes)
        if isinstance(route, APIRoute) and "/strategies/{strategy_id}" in route.path
    ]


def normalized(routers: Sequence[APIRouter]) -> None:
    """Make each per-strategy route of ``routers`` look its id up in NFC (in place)."""
    for r, i, route in _per_strategy(routers):
        if not getattr(route.endpoint, "_nfc", False):
            new = _route(route, route.path, by_query=False)
            new.endpoint._nfc = True  # type: ignore[attr-defined]
            r.routes[i] = new


def twins(routers: Sequence[APIRouter]) -> APIRouter:
    """A router with the ``?id=`` twin of each per-strategy route of ``routers``."""
    out = APIRouter()
    for _r, _i, route in _per_strategy(routers):
        path = route.path.replace("/strategies/{strategy_id}", "/strategy", 1)
        out.routes.append(_route(route, path, by_query=True))
    return out
