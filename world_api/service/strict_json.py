"""JSON request bodies with a repeated key are refused (422) on every route, instead of the
last value winning silently (see ``world_api.domain.strict``).

FastAPI reads a JSON body with ``await request.json()``, which Starlette caches; the routes
are given a handler that parses the body first with the strict loader and leaves the result
in that cache (so the body is parsed once). ``POST /worlds/{world}/metrics`` checks its own
body (``routers/metrics.py``); a policy (``PUT .../policy``) is checked by ``parse_policy``.

>>> from fastapi import APIRouter
>>> r = APIRouter()
>>> @r.post("/x")
... def x(body: dict) -> dict:
...     return body
>>> strict_routes([r])
>>> type(r.routes[0]).__name__
'StrictJsonRoute'
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import request_response

from world_api.domain import strict
from world_api.service.errors import HTTPError

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class StrictJsonRoute(APIRoute):
    """An ``APIRoute`` whose JSON body may not repeat a key (422 naming it)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            if request.method in _WITH_BODY and "json" in request.headers.get("content-type", ""):
                body = await request.body()
                if body:
                    try:
                        request._json = strict.loads(body)
                    except strict.DuplicateKey as exc:
                        raise HTTPError(422, f"body: {exc}") from None
                    except (ValueError, RecursionError):
                        pass  # FastAPI reports a malformed body itself
            return await handler(request)

        return strict_handler


def strict_routes(routers: Sequence[APIRouter]) -> None:
    """Make every API route of ``routers`` a :class:`StrictJsonRoute` (in place)."""
    for r in routers:
        for route in r.routes:
            if type(route) is APIRoute:
                route.__class__ = StrictJsonRoute
                route.app = request_response(route.get_route_handler())
