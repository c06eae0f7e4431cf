"""The OpenAPI schema made true to what the service answers (``/openapi.json``, ``/docs``).

- every error is :class:`ErrorDetail` ``{"detail": str}`` (``errors.py``), 422 included (not
  FastAPI's list of validation errors);
- :func:`document` gives every operation of an app the statuses it can answer without
  saying so itself: 401 and 403 when it takes a bearer token, 404 when its path has a
  parameter, 400 and 413 when it takes a body, 422 when it takes parameters or a body, 500 and 503
  always; a route adds its own (409, say) with ``responses=error_responses(409)``;
- raw bodies are declared with ``openapi_extra=request_body(...)``, streams with
  ``response_class=EventSourceResponse, responses=sse_responses(...)``;
- the bearer scheme comes from ``deps.bearer`` (FastAPI's ``HTTPBearer``).

>>> error_responses(409)[409]["content"]["application/json"]["schema"]
{'$ref': '#/components/schemas/ErrorDetail'}
>>> sorted(request_body(int, text=("application/yaml",))["requestBody"]["content"])
['application/json', 'application/yaml']
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, TypeAdapter

REF = "#/components/schemas/"

WHY: dict[int, str] = {
    400: "The body cannot be decoded (not UTF-8 JSON).",
    401: "No token, or one that is unknown, expired or revoked (the detail says which).",
    403: "The token's role ranks below the one this needs.",
    404: "An unknown world, strategy, policy version or plan.",
    409: "A conflict: exists already, applied already, a stale seq, the world changed, or "
         "its stored state cannot be loaded.",
    413: "The body is over 1 MiB (also when sent chunked).",
    422: "The request does not validate; the detail names the field.",
    500: "An unexpected error; the detail holds the request id it is logged with.",
    503: "The store cannot be reached; nothing was written.",
}
"""What each error status means here (the default description of its response)."""


class ErrorDetail(BaseModel):
    """Every error answer: ``{"detail": "<what went wrong, and where>"}``.

    >>> ErrorDetail(detail="unknown world 'x'").detail
    "unknown world 'x'"
    """

    model_config = ConfigDict(extra="allow", title="ErrorDetail")

    detail: str


def error_responses(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error ``statuses`` with :class:`ErrorDetail` bodies; a
    keyword ``s409="..."`` overrides the description of 409.

    >>> error_responses(409, s409="plan applied already")[409]["description"]
    'plan applied already'
    """
    return {
        s: {"description": why.get(f"s{s}", WHY.get(s, "An error.")),
            "content": {"application/json": {"schema": {"$ref": REF + "ErrorDetail"}}}}
        for s in statuses
    }


def sse_responses(description: str, data: Any = None, events: tuple[str, ...] = (),
                  *statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a Server-Sent Events route (with
    ``response_class=EventSourceResponse``): its 200 is ``text/event-stream`` whose events
    (``itemSchema``, as FastAPI's own streams and OpenAPI 3.2 say it) are named one of
    ``events`` and carry ``data``, JSON of that type (a model or any type pydantic knows);
    plus the error ``statuses``.

    >>> ok = sse_responses("events", int, ("tick",))[200]["content"]["text/event-stream"]
    >>> props = ok["itemSchema"]["properties"]
    >>> props["event"]["enum"], props["data"]["contentSchema"]
    (['tick'], {'type': 'integer'})
    """
    event: dict[str, Any] = {"type": "string"}
    if events:
        event["enum"] = list(events)
    payload: dict[str, Any] = {"type": "string"}
    if data is not None:
        payload |= {"contentMediaType": "application/json",
                    "contentSchema": TypeAdapter(data).json_schema(ref_template=REF + "{model}")}
    item = {"type": "object",
            "properties": {"event": event, "data": payload, "id": {"type": "string"},
                           "retry": {"type": "integer", "minimum": 0}}}
    return {200: {"description": description,
                  "content": {"text/event-stream": {"itemSchema": item}}},
            **error_responses(*statuses)}


def request_body(json: Any = None, *, text: tuple[str, ...] = (),
                 description: str = "") -> dict[str, Any]:
    """``openapi_extra=`` declaring the body of a route that reads it raw: JSON of the type
    ``json`` (a model, or any type pydantic knows, e.g. ``A | list[A]``) and/or text in
    the media types ``text``."""
    content: dict[str, Any] = {}
    if json is not None:
        content["application/json"] = {
            "schema": TypeAdapter(json).json_schema(ref_template=REF + "{model}")}
    for media in text:
        content[media] = {"schema": {"type": "string"}}
    body: dict[str, Any] = {"required": True, "content": content}
    if description:
        body["description"] = description
    return {"requestBody": body}


def default_statuses(path: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation of the schema can answer by how it is made (see the
    module docstring).

    >>> default_statuses("/worlds/{world}", {"security": [{"HTTPBearer": []}],
    ...                                      "parameters": [{"name": "world", "in": "path"}]})
    [401, 403, 404, 422, 500, 503]
    >>> default_statuses("/worlds", {"requestBody": {}})
    [400, 413, 422, 500, 503]
    """
    statuses = []
    if operation.get("security"):
        statuses += [401, 403]
    if "{" in path:
        statuses.append(404)
    if "requestBody" in operation:
        statuses += [400, 413]
    if "requestBody" in operation or operation.get("parameters"):
        statuses.append(422)
    return [*statuses, 500, 503]


def _hoist_defs(node: Any, defs: dict[str, Any]) -> None:
    """Move the ``$defs`` of inline schemas (from :func:`request_body`) to the components,
    where their ``$ref``s point."""
    if isinstance(node, dict):
        found = node.pop("$defs", None)
        if isinstance(found, dict):
            defs.update(found)
        for value in node.values():
            _hoist_defs(value, defs)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, defs)


def truthful(schema: dict[str, Any]) -> dict[str, Any]:
    """Make a generated schema say what the service answers: each operation gets its
    default error statuses (one it declares itself wins), FastAPI's own 422 body (a list of
    validation errors, which the service never sends) becomes :class:`ErrorDetail`, and the
    ``$defs`` of raw bodies move to the components. Changes ``schema`` and returns it."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    defs: dict[str, Any] = {}
    _hoist_defs(schema.get("paths", {}), defs)
    for name, body in defs.items():
        schemas.setdefault(name, body)
    fastapi_422 = {"$ref": REF + "HTTPValidationError"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if responses.get("422", {}).get("content", {}).get(
                    "application/json", {}).get("schema") == fastapi_422:
                del responses["422"]
            for status, response in error_responses(*default_statuses(path, operation)).items():
                responses.setdefault(str(status), response)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["ErrorDetail"] = ErrorDetail.model_json_schema()
    return schema


def document(app: FastAPI) -> None:
    """Make ``app.openapi()`` (``/openapi.json``, ``/docs``) :func:`truthful`, for every
    route the app has, also those added later."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = truthful(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
