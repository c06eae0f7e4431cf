"""How the WorldService reports errors: every error is ``{"detail": "<what went wrong>"}``
with the status that says whose fault it was.

- :class:`HTTPError`: raised by endpoints with their own status;
- the store's :class:`NotFound` (404), :class:`Conflict` (409) and
  :class:`StoreUnavailable` (503, and nothing was written);
- :class:`BodyTooLarge`: a body over the size limit, also one sent chunked (413);
- an invalid policy (422) and a request that does not validate (422, one readable line).

The OpenAPI schema declares this body (``ErrorDetail``) and the statuses of each route:
``openapi.py`` (``responses=error_responses(409)`` adds one to a route).

>>> describe([{"loc": ("body", "id"), "msg": "String should match pattern"}])
'id: String should match pattern'
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qmtl.core.errors import QmtlError
from world_api.domain.policy import PolicyError
from world_api.service.store import Conflict, NotFound, StoreUnavailable


class HTTPError(QmtlError):
    """An error with an HTTP status and a message a person can act on.

    >>> HTTPError(409, "plan 'x' was already applied").status
    409
    """

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class BodyTooLarge(QmtlError, StarletteHTTPException):
    """A request body that went over the size limit while it was being read (also one sent
    chunked, with no Content-Length to check up front): 413. It is a Starlette HTTP
    exception so that FastAPI's body parsing passes it on instead of making it a 400.

    >>> BodyTooLarge(1024).status_code, BodyTooLarge(1024).detail
    (413, 'request body exceeds the limit of 1024 bytes')
    """

    def __init__(self, limit: int) -> None:
        StarletteHTTPException.__init__(
            self, 413, f"request body exceeds the limit of {limit} bytes"
        )


def error_response(status: int, detail: str) -> JSONResponse:
    """The JSON body every error has.

    >>> error_response(404, "unknown world 'w'").body
    b'{"detail":"unknown world \\'w\\'"}'
    """
    return JSONResponse(status_code=status, content={"detail": detail})


def describe(errors: Any) -> str:
    """One readable line from pydantic/FastAPI validation errors."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def known_error(exc: BaseException) -> JSONResponse | None:
    """The answer to an error this module knows (see its docstring), else None.

    >>> known_error(NotFound("unknown world 'w'")).status_code
    404
    >>> known_error(RuntimeError("boom")) is None
    True
    """
    if isinstance(exc, HTTPError):
        return error_response(exc.status, exc.detail)
    if isinstance(exc, BodyTooLarge):
        return error_response(413, exc.detail)
    if isinstance(exc, NotFound):
        return error_response(404, str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, str(exc))
    if isinstance(exc, StoreUnavailable):
        return error_response(503, f"store unavailable, nothing was written: {exc}")
    return None


async def _known(_: Request, exc: Exception) -> JSONResponse:
    response = known_error(exc)
    assert response is not None
    return response


async def _policy(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, f"invalid policy: {exc}")


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, describe(exc.errors()))


def add_error_handlers(app: FastAPI) -> None:
    """Install the handlers above on ``app``.

    >>> app = FastAPI(); add_error_handlers(app); NotFound in app.exception_handlers
    True
    """
    for known in (HTTPError, BodyTooLarge, NotFound, Conflict, StoreUnavailable):
        app.add_exception_handler(known, _known)
    app.add_exception_handler(PolicyError, _policy)
    app.add_exception_handler(RequestValidationError, _validation)
