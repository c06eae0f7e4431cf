"""Group commit of metrics updates: many clients at once against a real server, on SQLite and
PostgreSQL; each request is answered as if it were alone, and what is stored is exactly what
was acknowledged."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.deps import Actor
from world_api.service.group_commit import GroupCommit
from world_api.service.ingest import ingest_group
from world_api.service.state import WorldService
from world_api.service.store import WorldInfo, open_store

POLICY = "top_k: 3\nhysteresis: {margin: 0.0}\nallocation: {method: equal}\n"


def update(sid: str, seq: int, sharpe: float, run: str = "r") -> dict:
    return {"world": "w", "strategy_id": sid, "run_id": run, "seq": seq, "mode": "live",
            "as_of": seq, "n_bars": seq, "metrics": {"sharpe": sharpe},
            "returns": [[seq, 0.001 * (seq % 7 - 3)]]}


async def _hammer(url: str, clients: int, per_client: int) -> list[tuple[int, dict]]:
    """``clients`` connections, each posting its strategy's updates one by one; every third
    is sent twice (a retry), client 0 also sends a stale one."""
    async def one(c: int) -> list[tuple[int, dict]]:
        out = []
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for s in range(1, per_client + 1):
                body = update(f"s{c:02d}", s, sharpe=((c * 7 + s) % 11) / 5)
                for _ in range(2 if s % 3 == 0 else 1):
                    r = await http.post("/worlds/w/metrics", json=body)
                    out.append((r.status_code, r.json()))
                if c == 0 and s == 2:
                    # 4 then 3: 3 is not after 4, so neither is stored (3 and 4 come next)
                    r = await http.post("/worlds/w/metrics", json=[update("s00", 4, 1.0),
                                                                  update("s00", 3, 1.0)])
                    out.append((r.status_code, r.json()))
        return out

    results = await asyncio.gather(*(one(c) for c in range(clients)))
    return [r for rs in results for r in rs]


def test_concurrent_clients_are_answered_as_if_alone(store_url):
    store = open_store(store_url)
    store.create_world(WorldInfo(id="w"))
    app = create_app(store, insecure_dev=True)
    svc: WorldService = app.state.service
    with serve(app) as url:
        assert httpx.put(f"{url}/worlds/w/policy", content=POLICY).status_code == 200
        answers = asyncio.run(_hammer(url, clients=12, per_client=15))
        seq = httpx.get(f"{url}/worlds/w/activation").json()["seq"]
    ok = [a for status, a in answers if status == 200]
    refused = [(status, a) for status, a in answers if status != 200]
    # the one stale request (seq 1 after 3 in one body) is a 409 for it alone, naming it
    assert len(refused) == 1 and refused[0][0] == 409
    assert "seq 3 of run 'r' is not after the last seen seq 4" in refused[0][1]["detail"]
    assert sum(a["accepted"] for a in ok) == 12 * 15  # every update once
    assert sum(a["duplicates"] for a in ok) == 12 * 5  # every retry seen as one
    # each request got the events its own updates caused: together, every event once
    seqs = sorted(e["seq"] for a in ok for e in a["events"])
    assert seqs == list(range(1, seq + 1)) and seq > 0
    assert svc.ingests.groups < len(answers)  # some requests were written together
    # one audit row per answered request, none for the refused one
    rows = store.audit_log("w", action="post_metrics", limit=10_000)
    assert len(rows) == len(ok)
    with store.transaction() as conn:
        keys = conn.exec_driver_sql("SELECT COUNT(*) FROM metric_keys").scalar()
    assert keys == 12 * 15
    store.close()


def test_a_group_gives_what_one_request_at_a_time_gives(tmp_path):
    """The same requests, written as one group and one by one: the same answers and the same
    stored world."""
    reqs = [[update("a", 1, 1.0)], [update("b", 1, 2.0), update("b", 2, 0.5)],
            [update("a", 1, 1.0)], [update("c", 1, 3.0)], [update("a", 3, 0.1),
                                                             update("a", 2, 0.1)],
            [update("a", 2, 0.2), update("a", 2, 0.2)], [update("d", 1, 1.5, run="x")]]
    who = Actor(id="dev", owner="dev", role="operator", request_id="")
    outcomes = []
    for name in ("group", "single"):
        store = open_store(str(tmp_path / f"{name}.db"))
        store.create_world(WorldInfo(id="w"))
        svc = WorldService(store)
        svc.clock = lambda: 7  # stored records keep when they were last heard from
        parsed = [([MetricsUpdate.model_validate(u) for u in r], who) for r in reqs]
        got = (ingest_group(svc, "w", parsed) if name == "group"
               else [ingest_group(svc, "w", [p])[0] for p in parsed])
        shown = [(o.status, o.detail) if isinstance(o, Exception)
                 else {**o, "events": [{**e, "ts": 0} for e in o["events"]]} for o in got]
        state = store.engine_state("w", *reversed(store.get_policy("w")))
        outcomes.append((shown, json.dumps(state["strategies"], sort_keys=True),
                         state["realized"]))
        store.close()
    assert outcomes[0] == outcomes[1]
    answers = outcomes[0][0]
    assert answers[2]["duplicates"] == 1 and answers[4][0] == 409
    assert answers[5] == {**answers[5], "accepted": 1, "duplicates": 1}


def test_group_commit_fails_every_request_of_a_failed_write_and_caps_a_group():
    sizes = []

    def write(world, items):
        sizes.append(len(items))
        if "boom" in items:
            raise RuntimeError("store on fire")
        return list(items)

    async def demo():
        group = GroupCommit(write, max_group=3)
        first = await asyncio.gather(*(group.submit("w", i) for i in range(7)))
        failed = await asyncio.gather(group.submit("w", "x"), group.submit("w", "boom"),
                                      return_exceptions=True)
        return first, failed, group.waiting("w")

    first, failed, waiting = asyncio.run(demo())
    assert first == list(range(7)) and sizes[:3] == [3, 3, 1]
    assert [str(f) for f in failed] == ["store on fire"] * 2 and waiting == 0


@pytest.mark.parametrize("fast", [True, False])
def test_the_fast_path_and_fastapis_route_answer_alike(tmp_path, fast):
    """Every kind of request to POST /worlds/{world}/metrics, through the lean ASGI path and
    through FastAPI's router: the same statuses and bodies (compared to a table)."""
    from world_api.service.auth import create_token

    store = open_store(str(tmp_path / "w.db"))
    store.create_world(WorldInfo(id="w"))
    dev, viewer = create_token(store, "developer"), create_token(store, "viewer")
    app = create_app(store, fast_ingest=fast)
    h = {"Authorization": f"bearer {dev}"}  # the scheme in any case
    cases = [
        ("ok", "w", h, json.dumps(update("a", 1, 1.0)), 200, '"accepted":1'),
        ("list", "w", h, json.dumps([update("a", 2, 1.0)]), 200, '"accepted":1'),
        ("duplicate", "w", h, json.dumps(update("a", 2, 1.0)), 200, '"duplicates":1'),
        ("stale", "w", h, json.dumps([update("a", 4, 1.0), update("a", 3, 1.0)]), 409,
         "is not after the last seen seq"),
        ("not json", "w", h, "{nope", 422, "Invalid JSON"),
        ("wrong world", "w", h, json.dumps({**update("a", 9, 1.0), "world": "v"}), 422,
         "posted to world 'w'"),
        ("unknown world", "v", h, json.dumps({**update("a", 9, 1.0), "world": "v"}), 404,
         "unknown world 'v'"),
        ("no token", "w", {}, json.dumps(update("a", 9, 1.0)), 401, "missing bearer token"),
        ("basic", "w", {"Authorization": "Basic eDp5"}, "{}", 401, "missing bearer token"),
        ("bad token", "w", {"Authorization": "Bearer qmtl_nope"}, "{}", 401, "unknown token"),
        ("viewer", "w", {"Authorization": f"Bearer {viewer}"}, "{}", 403,
         "needs 'developer'"),
        ("too big", "w", h, " " * (2 << 20), 413, "exceeds the limit"),
    ]
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for name, world, headers, body, status, text in cases:
            r = http.post(f"/worlds/{world}/metrics", content=body,
                          headers={**headers, "Content-Type": "application/json"})
            assert (name, r.status_code) == (name, status), r.text
            assert text in r.text, (name, r.text)
            assert r.headers["content-type"] == "application/json"
            assert r.headers["X-Request-ID"]
        metrics = http.get("/metrics").text
    # timed under the route's template either way
    assert 'route="/worlds/{world}/metrics",status="200"' in metrics
    store.close()
