"""Error answers: an unreachable store is a 503 and nothing is written."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.world_api.conftest import TcpProxy
from tests.world_api.service.conftest import update
from world_api.service.app import create_app


def test_unreachable_store_gives_503_and_writes_nothing(pg_store_url):
    proxy = TcpProxy(("127.0.0.1", 5432))
    url = pg_store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    app = create_app(url, insecure_dev=True)
    with TestClient(app) as c:
        c.post("/worlds", json={"id": "w1"})
        proxy.cut()
        r = c.post("/worlds/w1/metrics", json=update("a", 1))
        assert r.status_code == 503 and "nothing was written" in r.json()["detail"]
        assert c.get("/worlds/w1/activation").status_code == 503
        proxy.restore()
        for _ in range(20):  # each server thread notices its broken connection once
            r = c.post("/worlds/w1/metrics", json=update("a", 1))
            if r.status_code != 503:
                break
        assert r.status_code == 200 and r.json()["accepted"] == 1
        snap = c.get("/worlds/w1/activation")
        for _ in range(20):
            if snap.status_code != 503:
                break
            snap = c.get("/worlds/w1/activation")
        assert snap.json()["seq"] == 1  # one event: the refused writes left nothing behind
    proxy.cut()
    app.state.service.store.close()
