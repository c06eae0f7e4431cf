"""The HTTP edge of the WorldService: body limits on the wire, cursor parsing, and what a
handler error leaves of the connection — against a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.world_api.conftest import serve
from world_api.service.app import MAX_BODY, create_app
from world_api.service.store import Store, WorldInfo, open_store


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b" " * piece


def test_chunked_body_over_the_limit_is_refused(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        r = c.post("/worlds", content=_chunks(10 * MAX_BODY),
                   headers={"Content-Type": "application/json"})
        assert r.request.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in r.request.headers
        assert r.status_code == 413, r.text
        assert r.json() == {"detail": f"request body exceeds the limit of {MAX_BODY} bytes"}
        # a chunked body under the limit still goes through
        body = b'{"id": "w1", "name": "demo"}'
        ok = c.post("/worlds", content=iter([body]), headers={"Content-Type": "application/json"})
        assert ok.status_code == 201, ok.text
        # an endpoint reading the raw body (a policy's YAML) is cut off the same way
        big = c.put("/worlds/w1/policy", content=_chunks(10 * MAX_BODY))
        assert big.status_code == 413, big.text
        assert c.get("/worlds/w1/policy").json()["version"] == 1
    app.state.service.store.close()


@pytest.fixture
def server(tmp_path) -> Iterator[httpx.Client]:
    """A real uvicorn server (headers go over the wire as bytes) with world ``w1``."""
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        yield c
    app.state.service.store.close()


@pytest.mark.parametrize("header", [b"\xb2", b"9223372036854775808", b"-1", b"1e3"])
def test_bad_last_event_id_is_422(server, header):
    r = server.get("/worlds/w1/events", params={"once": 1}, headers={"Last-Event-ID": header})
    assert r.status_code == 422, r.text
    assert "Last-Event-ID" in r.json()["detail"]
    ok = server.get("/worlds/w1/events", params={"once": 1},
                    headers={"Last-Event-ID": str(2**63 - 1)})
    assert ok.status_code == 200


def test_after_beyond_int64_is_422(client):
    r = client.get("/worlds/w1/events", params={"once": 1, "after": 2**63})
    assert r.status_code == 422, r.text
    assert "after" in r.json()["detail"]
    ok = client.get("/worlds/w1/events", params={"once": 1, "after": 2**63 - 1})
    assert ok.status_code == 200


class _BrokenStore(Store):
    """A real store whose world lookups fail with an error no handler knows."""

    def get_world(self, world: str) -> WorldInfo:
        if world == "boom":
            raise RuntimeError("disk on fire")
        return super().get_world(world)


def test_a_500_does_not_poison_the_kept_alive_connection(tmp_path):
    open_store(str(tmp_path / "w.db")).close()  # migrate once
    store = _BrokenStore(str(tmp_path / "w.db"))
    app = create_app(store, insecure_dev=True)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        bad = c.get("/worlds/boom")
        assert bad.status_code == 500
        rid = bad.headers["X-Request-ID"]
        assert bad.json() == {"detail": f"internal error (request {rid})"}
        assert "disk on fire" not in bad.text
        for _ in range(3):
            r = c.get("/worlds/w1")
            assert r.status_code == 200, r.text
    store.close()
