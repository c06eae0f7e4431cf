"""``GET /worlds/{world}/events``: the Server-Sent Events stream."""

from __future__ import annotations

import threading

import httpx

from tests.world_api.conftest import serve
from tests.world_api.service.conftest import RNG, streamed, update
from world_api.service.app import create_app
from world_api.service.event_stream import keep_alive


def test_sse_resumes_after_last_event_id(client):
    client.post("/worlds/w1/metrics", json=[update(s, 1, 1.0 + i) for i, s in enumerate("abc")])
    full = streamed(client)
    assert len(full) >= 3
    tail = streamed(client, last_event_id=full[1][0])
    assert tail == full[2:]


def test_snapshot_then_stream_misses_nothing_under_concurrent_updates(store_url):
    app = create_app(store_url, insecure_dev=True)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        c.post("/worlds", json={"id": "w1"})
        c.put("/worlds/w1/policy", content="top_k: 3\nallocation: {method: inverse_vol}")

        def writer(k: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as w:
                for seq in range(1, 16):
                    sharpe = float(RNG.normal(1, 0.5))
                    w.post("/worlds/w1/metrics", json=update(f"s{k}", seq, sharpe))

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        snap = c.get("/worlds/w1/activation").json()
        for t in threads:
            t.join()
        final = c.get("/worlds/w1/activation").json()
        stream = streamed(c, after=snap["seq"])
        seqs = [s for s, _ in stream]
        assert seqs == list(range(snap["seq"] + 1, final["seq"] + 1))
        # replaying the snapshot's table plus the stream gives the final table
        table = {r["strategy_id"]: (r["active"], r["weight"]) for r in snap["strategies"]}
        for _, ev in stream:
            table[ev["strategy_id"]] = (ev["active"], ev["weight"])
        want = {r["strategy_id"]: (r["active"], r["weight"]) for r in final["strategies"]}
        assert {k: v for k, v in table.items() if v[0]} == {k: v for k, v in want.items() if v[0]}
    app.state.service.store.close()


def test_stream_wire_format_and_bad_last_event_id(client):
    client.post("/worlds/w1/metrics", json=update("a", 1, 1.0))
    r = client.get("/worlds/w1/events", params={"once": 1})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    event = client.get("/worlds/w1/activation").json()["seq"]
    head, data = r.text.split("data: ", 1)
    assert head == f"id: {event}\nevent: activation\n" and data.endswith("}\n\n")
    bad = client.get("/worlds/w1/events", params={"once": 1}, headers={"Last-Event-ID": "x"})
    assert bad.status_code == 422 and "Last-Event-ID must be an event seq" in bad.json()["detail"]
    assert client.get("/worlds/nope/events", params={"once": 1}).status_code == 404
    assert client.get("/worlds/w1/events", params={"heartbeat": 0}).status_code == 422


def test_keep_alive_is_an_event_without_data():
    assert keep_alive().encode() == b"event: keep-alive\n\n"
