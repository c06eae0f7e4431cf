"""Shared by the property tests of the service: an app on a store of each backend with world
``w1`` (a policy, strategies, events) behind a TestClient for a whole module, and a snapshot
of everything a client can read of a world, to compare before and after a refused request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.world_api.conftest import backend_url
from tests.world_api.service.conftest import POLICY_YAML, update
from world_api.service.app import create_app

READS = ["/worlds/w1", "/worlds/w1/policy", "/worlds/w1/strategies",
         "/worlds/w1/events?once=1", "/worlds/w1/returns", "/worlds/w1/returns?kind=target",
         "/worlds/w1/metrics", "/worlds/w1/activation", "/worlds/w1/allocations"]
"""What a client reads of world ``w1``: its info, policy, strategies, events, returns."""


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world_client(request, tmp_path_factory) -> Iterator[TestClient]:
    """A TestClient of an app whose store (SQLite or PostgreSQL) holds world ``w1`` with a
    policy and two strategies, one active (so there are events and returns)."""
    urls = backend_url(request.param, tmp_path_factory.mktemp("world"), "world.db")
    url = next(urls)
    app = create_app(url, insecure_dev=True)
    with TestClient(app) as client:
        assert client.post("/worlds", json={"id": "w1", "name": "demo"}).status_code == 201
        assert client.put("/worlds/w1/policy", content=POLICY_YAML).status_code == 200
        batch = [update("s1", 1, sharpe=1.5), update("s2", 1, sharpe=0.1)]
        assert client.post("/worlds/w1/metrics", json=batch).status_code == 200
        yield client
    app.state.service.store.close()
    next(urls, None)  # drop the PostgreSQL schema


def snapshot(client: TestClient) -> dict[str, tuple[int, bytes]]:
    """Status and body bytes of every read in :data:`READS`."""
    out = {}
    for path in READS:
        r = client.get(path)
        out[path] = (r.status_code, r.content)
    return out


def dumps(doc: Any) -> str:
    """JSON as a careless client writes it: NaN and Infinity allowed, non-ASCII raw."""
    return json.dumps(doc, ensure_ascii=False)


def assert_refused_cleanly(client: TestClient, r: Any, before: dict[str, tuple[int, bytes]]
                           ) -> None:
    """A 4xx with a string ``detail``, and the world reads exactly as before it."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    after = snapshot(client)
    changed = [p for p in READS if after[p] != before[p]]
    assert not changed, f"a refused request ({r.status_code}) changed {changed}"
