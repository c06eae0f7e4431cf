"""The world dashboard (``/ui``) and the API docs (``/docs``, ``/redoc``), all served locally.

The pages are one static HTML shell; plain JavaScript modules (``static/``, no build step)
read the path, ask the JSON API for the data with the page's bearer token and draw it with
plotly.js, which comes from the ``plotly`` Python package (its bundled ``plotly.min.js``).
Swagger UI and ReDoc use the assets bundled by ``fastapi-offline``. Nothing is fetched from the
internet, so the dashboard and the docs work offline: ReDoc's bundle would load its logo from
``cdn.redoc.ly`` (it has no option not to), so it is served with that one URL replaced by an
empty inline image.

Two small read-only endpoints serve the pages: ``GET /ui/api/session`` says whether the
page's token is good and what its role is (always 200, so a page without a token asks for
one without a failed request in the console) and which optional endpoints this server has;
``GET /ui/api/worlds/{world}/last-plan`` gives the world's last allocation plan.

>>> import tempfile, os
>>> from fastapi import FastAPI
>>> from fastapi.testclient import TestClient
>>> from world_api.service.app import create_app
>>> client = TestClient(create_app(os.path.join(tempfile.mkdtemp(), "w.db"), insecure_dev=True))
>>> client.get("/ui").headers["content-type"]
'text/html; charset=utf-8'
>>> client.get("/ui/api/session").json()["role"]
'operator'
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from qmtl.core.contracts import WorldId
from world_api.service.deps import BearerDep, ServiceDep, ViewerDep, require
from world_api.service.errors import HTTPError
from world_api.service.security_headers import SecurityHeaders
from world_api.service.store import NotFound

STATIC = Path(__file__).resolve().parent / "static"
"""The dashboard's own assets (HTML shell, JavaScript modules, CSS)."""
DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
"""Swagger UI and ReDoc assets bundled by ``fastapi-offline``."""
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
"""The one URL ReDoc's bundle fetches by itself (its footer logo)."""
EMPTY_SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"
VENDOR_CACHE = {"Cache-Control": "public, max-age=86400"}
"""Third-party assets change only with their package: the browser may keep them a day."""

OPTIONAL_ROUTES = {
    "returns": "/worlds/{}/returns",
    "world_metrics": "/worlds/{}/metrics",
    "strategy_returns": "/worlds/{}/strategies/{}/returns",
    "updates": "/worlds/{}/updates",
}
"""Endpoints a page uses when the server has them (a GET route at that path)."""

router = APIRouter(prefix="/ui", include_in_schema=False)


def plotly_js() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` package (found without
    importing plotly).

    >>> plotly_js().name
    'plotly.min.js'
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the dashboard needs the 'plotly' package: pip install plotly")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


def _shape(path: str) -> str:
    """A route path with its parameters blanked, to compare routes by shape.

    >>> _shape("/worlds/{world}/strategies/{strategy_id}")
    '/worlds/{}/strategies/{}'
    """
    return re.sub(r"\{[^}]*\}", "{}", path)


def features(app: FastAPI) -> dict[str, bool]:
    """Which of :data:`OPTIONAL_ROUTES` the app serves (a GET at that path in its OpenAPI
    schema, which FastAPI builds once and keeps).

    >>> features(FastAPI())["updates"]
    False
    """
    paths = app.openapi().get("paths", {})
    gets = {_shape(path) for path, ops in paths.items() if "get" in ops}
    return {name: path in gets for name, path in OPTIONAL_ROUTES.items()}


def _shell() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))


@router.get("")
def worlds_page() -> HTMLResponse:
    """The list of worlds."""
    return _shell()


@router.get("/worlds/{world}")
def world_page(world: str) -> HTMLResponse:
    """One world: activation, returns, contributions, allocation, events, audit."""
    return _shell()


@router.get("/worlds/{world}/strategies/{strategy_id}")
def strategy_page(world: str, strategy_id: str) -> HTMLResponse:
    """One strategy's tear sheet."""
    return _shell()


@router.get("/api/session")
async def session(request: Request, svc: ServiceDep,
                  credentials: BearerDep = None) -> dict[str, Any]:
    """``{authenticated, id, name, role, detail, insecure_dev, features}`` for the caller's
    token (``name`` is its owner); 200 even when it is missing or does not authenticate
    (``authenticated`` false, ``detail`` says why). A token that fails is audited as on any
    endpoint; a page that offers none is not an authentication failure and is not."""
    out: dict[str, Any] = {"insecure_dev": svc.insecure_dev, "features": features(request.app)}
    no = {**out, "authenticated": False, "id": None, "name": None, "role": None}
    if not svc.insecure_dev and (credentials is None or not credentials.credentials.strip()):
        return {**no, "detail": "missing bearer token: pass 'Authorization: Bearer <token>'"}
    try:
        actor = await require("viewer")(request, svc, credentials)
    except HTTPError as exc:
        return {**no, "detail": exc.detail}
    return {**out, "authenticated": True, "id": actor.id, "name": actor.owner,
            "role": actor.role, "detail": ""}


@router.get("/api/worlds/{world}/last-plan")
def last_plan(world: WorldId, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """``{"plan": null}`` or the world's newest plan: ``{plan_id, ts, actor, base_seq,
    applied, current, proposed, changes}``."""
    svc.store.get_world(world)
    rows = svc.store.audit_log(world, 1, newest_first=True, action="plan")
    if not rows:
        return {"world": world, "plan": None}
    row = rows[0]
    plan_id = (row.get("detail") or {}).get("plan_id", "")
    try:
        base_seq, body, applied = svc.store.get_plan(world, plan_id)
    except NotFound:
        return {"world": world, "plan": None}
    plan = {"plan_id": plan_id, "ts": row["ts"], "actor": row["actor"], "base_seq": base_seq,
            "applied": applied, **body}
    return {"world": world, "plan": plan}


@functools.cache
def redoc_js() -> bytes:
    """ReDoc's standalone bundle with its CDN logo replaced by an empty inline image.

    >>> REDOC_LOGO.encode() in redoc_js(), len(redoc_js()) > 500_000
    (False, True)
    """
    text = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    return text.replace(REDOC_LOGO.encode(), EMPTY_SVG.encode())


@router.get("/vendor/redoc.standalone.js")
def redoc_asset() -> Response:
    """ReDoc, made to fetch nothing from the internet."""
    return Response(redoc_js(), media_type="text/javascript", headers=VENDOR_CACHE)


@router.get("/vendor/plotly.min.js")
def plotly_asset() -> FileResponse:
    """plotly.js from the ``plotly`` package."""
    return FileResponse(plotly_js(), media_type="text/javascript", headers=VENDOR_CACHE)


def install(app: FastAPI) -> None:
    """Add the dashboard, its assets, and the offline ``/docs`` (Swagger UI) and ``/redoc``
    pages to ``app`` (made with ``docs_url=None, redoc_url=None``: FastAPI's own pages load
    their assets from a CDN).

    >>> app = FastAPI(docs_url=None, redoc_url=None)
    >>> install(app)
    >>> sorted(p for p in (getattr(r, "path", "") for r in app.routes) if p.startswith("/doc"))
    ['/docs', '/docs/oauth2-redirect']
    """
    app.include_router(router)
    app.add_middleware(SecurityHeaders)  # nosniff everywhere, a CSP on the pages
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.mount("/ui/vendor/docs", StaticFiles(directory=DOCS_ASSETS), name="ui-docs-assets")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2 = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - Swagger UI",
            oauth2_redirect_url=oauth2,
            swagger_js_url="/ui/vendor/docs/swagger-ui-bundle.js",
            swagger_css_url="/ui/vendor/docs/swagger-ui.css",
            swagger_favicon_url="/ui/vendor/docs/favicon.png",
        )

    @app.get(oauth2, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url="/ui/vendor/redoc.standalone.js",
            redoc_favicon_url="/ui/vendor/docs/favicon.png",
            with_google_fonts=False,
        )
