"""The world-return endpoints on a real uvicorn server through the typed client: shapes,
404/422/401, the live updates stream (SSE), and the broadcast's bounded queues."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest

from tests.world_api.conftest import serve
from tests.world_api.returns_scenario import POLICY, updates
from world_api.client import (
    InvalidRequestError,
    NotFoundError,
    UnauthorizedError,
    WorldServiceClient,
)
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.broadcast import Broadcaster
from world_api.service.store import open_store

UPDATES = updates(3, seed=9, world="w1")


@pytest.fixture
def served(tmp_path):
    """A served WorldService with a world ``w1``: ``(url, operator token, viewer token)``."""
    store = open_store(str(tmp_path / "w.db"))
    op = create_token(store, "operator", "ops")
    viewer = create_token(store, "viewer", "dash")
    with serve(create_app(store)) as url, WorldServiceClient(url, op) as client:
        client.create_world("w1")
        client.put_policy("w1", POLICY)
        yield url, op, viewer
    store.close()


def test_the_endpoints_answer_the_documented_shapes(served):
    url, op, viewer = served
    with WorldServiceClient(url, op) as client:
        client.post_metrics("w1", UPDATES)
    with WorldServiceClient(url, viewer) as api:
        realized = api.world_returns("w1")
        pro = api.world_returns("w1", "pro_forma", limit=5)
        metrics = api.world_metrics("w1")
        strat = api.strategy_returns("w1", "hr", limit=3)
    assert set(realized) == {"world", "kind", "points", "realized_source"}
    assert realized["kind"] == "realized"
    assert realized["points"] and set(realized["points"][0]) == {"ts", "return", "equity"}
    assert pro["kind"] == "pro_forma" and len(pro["points"]) == 5
    assert set(metrics) == {"world", "realized_source", "realized", "pro_forma"}
    assert realized["realized_source"] == metrics["realized_source"] == "records"
    assert set(metrics["realized"]) == {"n_bars", "metrics"}
    assert set(metrics["pro_forma"]) == {"n_bars", "metrics", "overlap", "shared_bars",
                                         "first_shared", "last_shared", "warnings"}
    for kind in ("realized", "pro_forma"):
        assert {"sharpe", "total_return", "max_drawdown"} <= set(metrics[kind]["metrics"])
    assert metrics["realized"]["n_bars"] == len(realized["points"])
    assert metrics["realized"]["metrics"]["total_return"] == pytest.approx(
        realized["points"][-1]["equity"] - 1, rel=1e-12)
    # the strategy's kept returns are what it sent, with their times
    sent = [p for u in UPDATES if u.strategy_id == "hr" for p in u.returns]
    assert strat["strategy_id"] == "hr"
    assert [(p["ts"], p["return"]) for p in strat["points"]] == [(t, r) for t, r in sent[:3]]
    assert strat["points"][1]["equity"] == pytest.approx((1 + sent[0][1]) * (1 + sent[1][1]))


def test_errors_say_what_is_wrong(served):
    url, _, viewer = served
    with WorldServiceClient(url, viewer) as api:
        with pytest.raises(NotFoundError, match="unknown world 'nope'"):
            api.world_returns("nope")
        with pytest.raises(NotFoundError, match="unknown world 'nope'"):
            api.world_metrics("nope")
        with pytest.raises(NotFoundError, match="strategy 'zz' has not reported"):
            api.strategy_returns("w1", "zz")
        with pytest.raises(InvalidRequestError, match="kind"):
            api.world_returns("w1", "both")
        with pytest.raises(InvalidRequestError, match="limit"):
            api.world_returns("w1", limit=0)
    with WorldServiceClient(url) as anonymous, pytest.raises(UnauthorizedError):
        anonymous.world_metrics("w1")
    r = httpx.get(f"{url}/worlds/w1/updates", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def read_events(url: str, token: str, want: int, got: list, ready: threading.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, timeout=20, headers=headers) as h, h.stream(
        "GET", "/worlds/w1/updates", params={"heartbeat": 0.2}
    ) as r:
        name = None
        for line in r.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
                if name == "keep-alive":
                    got.append((name, None))
            elif line.startswith("data:"):
                got.append((name, json.loads(line.split(":", 1)[1])))
                ready.set()
            if sum(n != "keep-alive" for n, _ in got) >= want:
                return


def test_the_updates_stream_follows_each_accepted_update(served):
    url, op, viewer = served
    got: list = []
    ready = threading.Event()
    first, second = UPDATES[:4], UPDATES[4:8]
    # the snapshot, then per request its metrics events and a world event; then a world
    # event for the new policy (equal weights instead of inverse volatility)
    want = 1 + len(first) + 1 + len(second) + 1 + 1
    reader = threading.Thread(target=read_events, args=(url, viewer, want, got, ready))
    reader.start()
    assert ready.wait(10)  # the snapshot came: subscribed
    time.sleep(0.5)  # and a keep-alive or two
    with WorldServiceClient(url, op) as client:
        client.post_metrics("w1", first)
        client.post_metrics("w1", second)
        pro_before = client.world_metrics("w1")["pro_forma"]
        views = {v["strategy_id"]: v for v in client.strategies("w1")}
        client.put_policy("w1", "top_k: 2\nallocation: {method: equal}")
        reader.join(20)
        metrics = client.world_metrics("w1")
        realized = client.world_returns("w1")["points"]
    assert not reader.is_alive()
    named = [(n, d) for n, d in got if n != "keep-alive"]
    assert any(n == "keep-alive" for n, _ in got)
    assert named[0][0] == "world" and named[0][1]["realized"] is None
    kinds = [n for n, _ in named]
    assert kinds == ["world", *["metrics"] * 4, "world", *["metrics"] * 4, "world", "world"]
    assert named[-2][1]["metrics"]["pro_forma"] == pro_before
    sent = [d for n, d in named if n == "metrics"]
    assert [(d["strategy_id"], d["n_bars"], d["as_of"]) for d in sent] == [
        (u.strategy_id, u.n_bars, u.as_of) for u in first + second]
    assert set(sent[0]) == {"strategy_id", "n_bars", "as_of", "metrics", "active", "weight",
                            "rank"}
    d = sent[-1]  # the last update's event is its strategy's state now
    v = views[d["strategy_id"]]
    assert (d["active"], d["weight"], d["rank"], d["metrics"]) == (
        v["active"], v["weight"], v["rank"], v["metrics"])
    last = named[-1][1]
    assert last["metrics"] == {k: metrics[k] for k in ("realized", "pro_forma")}
    assert (last["realized"] is None) == (not realized)
    if realized:
        assert last["realized"] == realized[-1]


def test_a_slow_subscriber_drops_the_oldest_and_never_blocks_publishing():
    async def scenario() -> tuple[list[int], int, float]:
        hub = Broadcaster(maxsize=3)
        with hub.subscribe("w") as sub:
            t0 = time.perf_counter()
            worker = threading.Thread(
                target=lambda: [hub.publish("w", "metrics", {"i": i}) for i in range(50)])
            worker.start()
            worker.join()
            took = time.perf_counter() - t0
            await asyncio.sleep(0.05)  # let the loop run the hand-offs
            items = [sub.queue.get_nowait()[1]["i"] for _ in range(sub.queue.qsize())]
            return items, sub.dropped, took
        raise AssertionError("unreachable")

    items, dropped, _ = asyncio.run(scenario())
    assert items == [47, 48, 49] and dropped == 47
    hub = Broadcaster()
    hub.publish("nobody", "metrics", {})  # no subscriber: nothing to do, no error
    assert hub.subscribers("nobody") == 0
