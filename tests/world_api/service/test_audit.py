"""``GET /worlds/{id}/audit``: newest first, paged by a cursor, filtered."""

from __future__ import annotations

import httpx

from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.service.app import create_app


def test_audit_pages_past_1000_rows_newest_first_with_filters(store_url):
    """1,200 audit rows (past the old cap of the oldest 1,000): pages walk them all, newest
    first, without repeats; actor, action and time filters apply on the service."""
    app = create_app(store_url, insecure_dev=True)
    store = app.state.service.store
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=60) as http:
            assert http.post("/worlds", json={"id": "w1", "capital": 1e6}).status_code == 201
            for i in range(1_200):
                store.audit("w1", "alice" if i % 2 else "bob", "note", {"i": i})
            seen, params = [], {"limit": 500}
            while True:
                r = http.get("/worlds/w1/audit", params=params)
                assert r.status_code == 200, r.text
                seen += r.json()
                if "X-Next-Cursor" not in r.headers:
                    break
                params["before"] = r.headers["X-Next-Cursor"]
            notes = [row["detail"]["i"] for row in seen if row["action"] == "note"]
            assert notes == list(range(1_199, -1, -1))
            assert seen[-1]["action"] == "create_world"  # the oldest row comes last
            ids = [row["id"] for row in seen]
            assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)

            alice = http.get("/worlds/w1/audit", params={"actor": "alice", "limit": 3}).json()
            assert [row["detail"]["i"] for row in alice] == [1_199, 1_197, 1_195]
            assert http.get("/worlds/w1/audit", params={"action": "create_world"}).json()[0][
                "actor"] == seen[-1]["actor"]
            mid = seen[600]["ts"]
            newer = http.get("/worlds/w1/audit", params={"since": mid}).json()
            assert newer and all(row["ts"] >= mid for row in newer)
            older = http.get("/worlds/w1/audit", params={"until": mid}).json()
            assert older and all(row["ts"] <= mid for row in older)

            client = WorldServiceClient(http=http)
            assert len(client.audit("w1")) == 1_201  # follows the pages
            assert [row["detail"]["i"] for row in client.audit("w1", actor="bob", limit=2)] == [
                1_198, 1_196]

            for bad, field in (({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                               ({"before": "x"}, "before"), ({"since": 5, "until": 4}, "since")):
                r = http.get("/worlds/w1/audit", params=bad)
                assert r.status_code == 422 and field in str(r.json()["detail"]), (bad, r.text)
    finally:
        store.close()
