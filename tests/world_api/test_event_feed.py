"""Event streams through one tail per world: many subscribers each see every stored event once
and in order while writes go on, one that falls behind the tail reads the store, and a token
may hold only so many streams open (429)."""

from __future__ import annotations

import asyncio
import time

import httpx

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.domain.policy import parse_policy
from world_api.service.app import create_app
from world_api.service.auth import create_token, token_id
from world_api.service.event_feed import Tails
from world_api.service.state import WorldService
from world_api.service.store import WorldInfo, open_store

POLICY = "top_k: 2\nhysteresis: {margin: 0.0}\nallocation: {method: equal}\n"


def update(sid: str, seq: int, sharpe: float) -> dict:
    return {"world": "w", "strategy_id": sid, "run_id": "r", "seq": seq, "mode": "live",
            "as_of": seq, "n_bars": seq, "metrics": {"sharpe": sharpe},
            "returns": [[seq, 0.001]]}


async def _subscribe(url: str, n_events: int, out: list[int]) -> None:
    """Read one stream until ``n_events`` activation events came; their seqs into ``out``."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http, http.stream(
            "GET", "/worlds/w/events", params={"heartbeat": 0.5}) as r:
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if line.startswith("id: "):
                out.append(int(line[4:]))
                if len(out) >= n_events:
                    return


async def _run(url: str, subscribers: int) -> tuple[list[list[int]], int]:
    seen: list[list[int]] = [[] for _ in range(subscribers)]
    # ranks swap every round: each round of writes makes events
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for sid in "abc":
            await http.post("/worlds/w/metrics", json=update(sid, 1, 1.0))
        base = (await http.get("/worlds/w/activation")).json()["seq"]
        readers = [asyncio.create_task(_subscribe(url, 20, seen[i]))
                   for i in range(subscribers)]
        await asyncio.sleep(0.5)
        seq, k = base, 2
        while seq < base + 20:
            await asyncio.gather(*(http.post("/worlds/w/metrics",
                                             json=update(sid, k, ((k + i) % 3) * 1.0))
                                   for i, sid in enumerate("abc")))
            seq = (await http.get("/worlds/w/activation")).json()["seq"]
            k += 1
        await asyncio.wait_for(asyncio.gather(*readers), 30)
    return seen, base


def test_many_subscribers_see_every_event_once_in_order(store_url):
    store = open_store(store_url)
    store.create_world(WorldInfo(id="w"))
    app = create_app(store, insecure_dev=True)
    app.state.service.tails.max_per_token = 1000
    with serve(app) as url:
        assert httpx.put(f"{url}/worlds/w/policy", content=POLICY).status_code == 200
        seen, base = asyncio.run(_run(url, subscribers=40))
    for seqs in seen:  # from the first event, no gap, nothing twice
        assert seqs[:20] == list(range(1, 21))
    assert base < 20  # most of those came live, after the streams opened
    store.close()


def test_a_subscriber_behind_the_tail_reads_the_store(tmp_path):
    """A tail that keeps 4 events, a subscriber that starts at 0 with 30 stored: it gets all
    30 in order (from the store, then the tail)."""
    store = open_store(str(tmp_path / "w.db"))
    store.create_world(WorldInfo(id="w"))
    svc = WorldService(store)
    policy = parse_policy(POLICY)  # top 2 of 5 whose Sharpes take turns: events every round
    svc.write("w", lambda eng: (eng.set_policy(policy, 2), {"policy": policy}))

    def write(n: int, start: int) -> None:
        for k in range(start, start + n):
            u = MetricsUpdate.model_validate(update(f"s{k % 5}", k, float(k % 7)))
            svc.write("w", lambda eng, u=u: (eng.ingest(u), {"keys": []}))

    async def follow() -> list[int]:
        tails = Tails(store, poll=0.05, keep=4)
        seqs: list[int] = []
        agen = tails.follow("w", 0)
        async for batch in agen:
            seqs += [e.seq for e in batch]
            if seqs[-1] == before:  # caught up: write more than the tail keeps, at once
                await asyncio.to_thread(write, 40, 100)
            if seqs[-1] >= store.world_seq("w"):
                break
        await agen.aclose()
        return seqs

    write(40, 1)
    before = store.world_seq("w")
    assert before >= 10
    seqs = asyncio.run(follow())
    assert seqs == list(range(1, store.world_seq("w") + 1)) and seqs[-1] > before
    store.close()


def test_a_token_holds_at_most_its_cap_of_streams(tmp_path):
    store = open_store(str(tmp_path / "w.db"))
    store.create_world(WorldInfo(id="w"))
    token, other = create_token(store, "viewer"), create_token(store, "viewer")
    app = create_app(store)
    app.state.service.tails.max_per_token = 2

    async def run(url: str) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            h = {"Authorization": f"Bearer {token}"}
            opened = [http.stream("GET", "/worlds/w/events", headers=h) for _ in range(2)]
            streams = [await s.__aenter__() for s in opened]
            assert [s.status_code for s in streams] == [200, 200]
            r = await http.get("/worlds/w/updates", headers=h)  # the dashboard's counts too
            assert r.status_code == 429
            assert "already holds 2 open event streams" in r.json()["detail"]
            r = await http.get("/worlds/w/events", params={"once": 1},
                               headers={"Authorization": f"Bearer {other}"})
            assert r.status_code == 200  # another token is not held back
            await opened[0].__aexit__(None, None, None)
            deadline = time.monotonic() + 10  # the server sees the disconnect, then frees
            while True:
                r = await http.get("/worlds/w/events", params={"once": 1}, headers=h)
                if r.status_code == 200 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert r.status_code == 200
            await opened[1].__aexit__(None, None, None)

    with serve(app) as url:
        asyncio.run(run(url))
    assert app.state.service.tails.streams(token_id(token)) == 0
    store.close()
