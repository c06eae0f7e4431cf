"""Bearer tokens and roles (``deps.py``), and the audit log they sign."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.world_api.service.conftest import update
from world_api.service.app import create_app
from world_api.service.auth import create_token, token_id
from world_api.service.store import open_store


def test_tokens_roles_and_audit(store_url):
    store = open_store(store_url)
    viewer = create_token(store, "viewer", "watcher")
    dev = create_token(store, "developer", "quant")
    op = create_token(store, "operator", "boss")
    app = create_app(store)
    with TestClient(app) as c:
        def h(t):
            return {"Authorization": f"Bearer {t}", "X-Request-ID": "req-42"}

        assert c.get("/worlds").status_code == 401
        assert c.get("/worlds", headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/worlds", json={"id": "w1"}, headers=h(dev))
        assert r.status_code == 403 and "needs 'operator'" in r.json()["detail"]
        assert c.post("/worlds", json={"id": "w1"}, headers=h(op)).status_code == 201
        r = c.post("/worlds/w1/metrics", json=update("a", 1), headers=h(viewer))
        assert r.status_code == 403
        assert c.post("/worlds/w1/metrics", json=update("a", 1), headers=h(dev)).status_code == 200
        assert c.get("/worlds/w1/activation", headers=h(viewer)).status_code == 200
        audit = c.get("/worlds/w1/audit", headers=h(viewer)).json()[::-1]  # newest first
        # the actor is the token's public id, its owner beside it
        assert [(a["actor"], a["owner"], a["action"], a["request_id"]) for a in audit] == [
            (token_id(op), "boss", "create_world", "req-42"),
            (token_id(dev), "quant", "post_metrics", "req-42")]
    store.close()
