"""The dashboard's server side without a browser: the pages and every asset they name are
served by the service itself (no URL leaves it), plotly.js is the plotly package's own,
Swagger UI is local, and the two small endpoints the pages use answer as documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store
from world_api.service.ui import DOCS_ASSETS, EMPTY_SVG, REDOC_LOGO, STATIC, features, plotly_js

PAGES = ["/ui", "/ui/worlds/w", "/ui/worlds/w/strategies/s1"]
URL = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
IMPORT = re.compile(r"""^import .* from "\./([^"]+)";""", re.M)


@pytest.fixture
def app_store(tmp_path: Path):
    store = open_store(str(tmp_path / "w.db"))
    return create_app(store), store


@pytest.fixture
def dev(tmp_path: Path) -> TestClient:
    return TestClient(create_app(str(tmp_path / "w.db"), insecure_dev=True))


@pytest.mark.parametrize("page", PAGES)
def test_every_page_is_the_shell_and_names_only_local_assets(dev: TestClient, page: str):
    r = dev.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    urls = URL.findall(r.text)
    assert urls and all(u.startswith("/") or u.startswith("data:") for u in urls), urls
    for u in urls:
        if u.startswith("/"):
            assert dev.get(u).status_code == 200, u


def test_the_modules_import_only_each_other_and_all_are_served(dev: TestClient):
    modules = {p.name for p in STATIC.glob("*.js")}
    for name in modules:
        r = dev.get(f"/ui/static/{name}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"]
        text = r.text
        assert set(IMPORT.findall(text)) <= modules, name
        # nothing in the dashboard's own code reaches for another host
        assert not re.search(r"https?://", text), name
    css = dev.get("/ui/static/dashboard.css").text
    assert "url(" not in css and "@import" not in css


def test_plotly_js_is_the_plotly_packages_own_bundle(dev: TestClient):
    r = dev.get("/ui/vendor/plotly.min.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert r.content == plotly_js().read_bytes()
    assert "max-age" in r.headers["cache-control"]


def test_swagger_ui_and_redoc_are_served_locally(dev: TestClient):
    html = dev.get("/docs").text
    assets = URL.findall(html) + re.findall(r"url: ['\"]([^'\"]+)['\"]", html)
    assert "/ui/vendor/docs/swagger-ui-bundle.js" in assets
    assert "/ui/vendor/docs/swagger-ui.css" in assets
    assert not re.search(r"https?://", html)
    for a in ("/ui/vendor/docs/swagger-ui-bundle.js", "/ui/vendor/docs/swagger-ui.css",
              "/openapi.json"):
        assert dev.get(a).status_code == 200, a
    redoc = dev.get("/redoc").text
    assert not re.search(r"https?://", redoc)  # no Google fonts either
    assert URL.findall(redoc) == ["/ui/vendor/docs/favicon.png", "/ui/vendor/redoc.standalone.js"]
    bundle = dev.get("/ui/vendor/redoc.standalone.js")
    assert bundle.status_code == 200
    assert bundle.headers["content-type"].startswith("text/javascript")
    original = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    assert REDOC_LOGO.encode() in original and REDOC_LOGO.encode() not in bundle.content
    # the one change: the logo's URL
    assert bundle.content == original.replace(REDOC_LOGO.encode(), EMPTY_SVG.encode())
    assert "/ui" not in str(dev.get("/openapi.json").json()["paths"])  # not part of the API


def test_the_session_says_who_the_token_is_and_never_fails(app_store):
    app, store = app_store
    client = TestClient(app)
    viewer = create_token(store, "viewer", "vic")
    no = client.get("/ui/api/session").json()
    assert no["authenticated"] is False and no["role"] is None
    assert no["detail"].startswith("missing bearer token")
    bad = client.get("/ui/api/session", headers={"Authorization": "Bearer qmtl_x"})
    assert bad.status_code == 200 and bad.json()["detail"] == "unknown token"
    # a token that fails is audited as on any endpoint; a page offering none is not
    failures = [r["detail"]["path"] for r in store.audit_log(None, action="auth_failed")]
    assert failures == ["/ui/api/session"]
    ok = client.get("/ui/api/session", headers={"Authorization": f"Bearer {viewer}"}).json()
    assert (ok["authenticated"], ok["name"], ok["role"]) == (True, "vic", "viewer")
    assert ok["id"] and ok["id"] in viewer
    assert ok["insecure_dev"] is False
    # the optional endpoints are flagged by what the app routes, not guessed
    paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops]
    for name, tail in (("updates", "/updates"), ("world_metrics", "/metrics"),
                       ("strategy_returns", "/strategies/{}/returns")):
        assert ok["features"][name] == any(
            re.fullmatch(r"/worlds/\{[^}]+\}" + re.escape(tail).replace(r"\{\}", r"\{[^}]+\}"), p)
            for p in paths), name


def test_the_last_plan_is_the_newest_plan_of_the_world(app_store):
    app, store = app_store
    client = TestClient(app)
    ops = {"Authorization": f"Bearer {create_token(store, 'operator')}"}
    viewer = {"Authorization": f"Bearer {create_token(store, 'viewer')}"}
    assert client.post("/worlds", json={"id": "w"}, headers=ops).status_code == 201
    assert client.get("/ui/api/worlds/w/last-plan", headers=viewer).json() == {
        "world": "w", "plan": None}
    client.post("/worlds/w/allocations/plan", headers=ops)
    second = client.post("/worlds/w/allocations/plan", headers=ops).json()
    second_actor = client.get("/worlds/w/audit?action=plan&limit=1", headers=ops).json()[0]["actor"]
    got = client.get("/ui/api/worlds/w/last-plan", headers=viewer).json()["plan"]
    assert got["plan_id"] == second["plan_id"] and got["base_seq"] == second["base_seq"]
    assert (got["current"], got["proposed"], got["changes"]) == (
        second["current"], second["proposed"], second["changes"])
    assert got["applied"] is False and got["actor"] == second_actor
    client.post("/worlds/w/allocations/apply", json={"plan_id": second["plan_id"]}, headers=ops)
    assert client.get("/ui/api/worlds/w/last-plan", headers=viewer).json()["plan"]["applied"]
    assert client.get("/ui/api/worlds/w/last-plan").status_code == 401
    assert client.get("/ui/api/worlds/nope/last-plan", headers=viewer).status_code == 404
    assert client.get("/ui/api/worlds/a%00b/last-plan", headers=viewer).status_code == 422


def test_features_follow_the_routes_whatever_their_parameters_are_named():
    app = FastAPI()
    app.get("/worlds/{world_id}/updates")(lambda world_id: None)
    app.post("/worlds/{w}/metrics")(lambda w: None)  # a POST is not the GET a page reads
    app.get("/worlds/{w}/strategies/{sid}/returns")(lambda w, sid: None)
    assert features(app) == {"returns": False, "world_metrics": False,
                             "strategy_returns": True, "updates": True}
