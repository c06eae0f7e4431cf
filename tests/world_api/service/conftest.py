"""Shared by the service tests: a policy, a MetricsUpdate maker, an app with world ``w1``
behind a TestClient, and the events of a stream as ``(seq, event)`` pairs."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from world_api.client import WorldServiceClient
from world_api.service.app import create_app

POLICY_YAML = """
min_bars: 100
gates: {sharpe: ">= 0.5"}
score: {sharpe: 1.0}
top_k: 2
allocation: {method: equal, max_weight: 0.6}
"""

RNG = np.random.default_rng(7)


def update(sid, seq, sharpe=1.0, n_bars=200, run="r1", world="w1"):
    return {"world": world, "strategy_id": sid, "run_id": run, "seq": seq, "mode": "backtest",
            "as_of": seq, "n_bars": n_bars, "metrics": {"sharpe": sharpe},
            "returns": [[min(seq, 10**12) * 30 + i, r]
                        for i, r in enumerate(RNG.normal(0.001, 0.01, 30))]}


def streamed(http: httpx.Client, world: str = "w1", **kw: Any) -> list[tuple[int, dict]]:
    """``(seq, event as a dict)`` of each event of ``world``'s stream until caught up, read
    through the client (httpx-sse)."""
    client = WorldServiceClient(http=http)
    return [(e.seq, e.model_dump()) for e in client.event_list(world, **kw)]


@pytest.fixture
def client(store_url):
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        created = c.post("/worlds", json={"id": "w1", "name": "demo", "capital": 1e6})
        assert created.status_code == 201
        yield c
    app.state.service.store.close()
