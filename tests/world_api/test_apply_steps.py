"""Two-phase apply: the steps' state machine, their control events in the world's seq
order, the frozen flag of the activation table, the gate holding while frozen, old
subscribers unaffected by control events, and recovery of an apply left open."""

from __future__ import annotations

import threading
import time

import httpx
from httpx_sse import connect_sse

from dataflows.gate import ActivationBook, verdict
from qmtl.core.contracts import ActivationEvent, ControlEvent
from tests.world_api.conftest import serve
from tests.world_api.service.conftest import client, update  # noqa: F401
from world_api.domain.apply import STEPS, frozen, next_step, recovery
from world_api.service.app import create_app
from world_api.service.store import WorldInfo, open_store

OPEN = "top_k: 3\nallocation: {method: equal}\n"


def test_the_state_machine_walks_the_steps_and_recovery_depends_only_on_the_switch():
    walked, step = [], None
    while (step := next_step(step)) is not None:
        walked.append(step)
    assert walked == list(STEPS) == ["freeze", "drain", "switch", "unfreeze"]
    assert [recovery(s) for s in STEPS] == ["rollback", "rollback", "finish", None]
    assert [frozen(s) for s in STEPS] == [True, True, True, False]


def _seed(http) -> None:
    http.put("/worlds/w1/policy", content=OPEN)
    http.post("/worlds/w1/metrics", json=[update("a", 1, 2.0), update("b", 1, 1.0)])


def test_control_events_frame_the_switch_in_seq_order(client):  # noqa: F811
    _seed(client)
    plan = client.post("/worlds/w1/allocations/plan").json()
    r = client.post("/worlds/w1/allocations/apply", json={
        "plan_id": plan["plan_id"], "overrides": {"a": 0.7, "b": 0.3}, "drain": 0.05})
    assert r.status_code == 200, r.text
    out = r.json()
    seqs = {c["step"]: c["seq"] for c in out["control"]}
    acts = [e["seq"] for e in out["events"]]
    assert seqs["freeze"] + 1 == seqs["drain"] < min(acts)
    assert max(acts) + 1 == seqs["switch"] and seqs["switch"] + 1 == seqs["unfreeze"]
    assert out["control"][-1]["outcome"] == "applied"
    with connect_sse(client, "GET", "/worlds/w1/events", params={"once": 1}) as src:
        wire = [(s.event, s.id, s.data) for s in src.iter_sse()]
    names = [n for n, _, _ in wire]
    assert names.count("control") == 4
    # an old subscriber reads only `event: activation`, each still a valid ActivationEvent
    for name, sid, data in wire:
        model = ActivationEvent if name == "activation" else ControlEvent
        assert model.model_validate_json(data).seq == int(sid)
    ids = [int(i) for _, i, _ in wire]
    assert ids == sorted(ids) == list(range(1, len(ids) + 1))


def test_the_table_says_frozen_during_an_apply_and_a_gate_holds(store_url, monkeypatch):
    monkeypatch.setenv("QMTL_WORLD_APPLY_PAUSE", "0.3")
    app = create_app(store_url, insecure_dev=True)
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            http.post("/worlds", json={"id": "w1"})
            _seed(http)
            plan = http.post("/worlds/w1/allocations/plan").json()
            done = threading.Event()

            def apply() -> None:
                with httpx.Client(base_url=base, timeout=30) as own:
                    own.post("/worlds/w1/allocations/apply",
                             json={"plan_id": plan["plan_id"], "drain": 0.2})
                done.set()

            threading.Thread(target=apply, daemon=True).start()
            seen = None
            deadline = time.time() + 10
            while seen is None and time.time() < deadline and not done.is_set():
                snap = http.get("/worlds/w1/activation").json()
                seen = snap["frozen"]
            assert seen is not None and plan["plan_id"] in seen
            book = ActivationBook("w1")
            book.load_snapshot(snap, now=0.0)
            v = verdict(book, "a", now=0.0, max_age=30.0)
            assert v.kind == "hold" and "frozen" in v.reason
            assert done.wait(10)
            after = http.get("/worlds/w1/activation").json()
            assert after["frozen"] is None
            book.load_snapshot(after, now=1.0)
            assert verdict(book, "a", now=1.0, max_age=30.0).kind == "trade"
    finally:
        app.state.service.store.close()


def test_the_gate_follows_control_events_in_order():
    book = ActivationBook("w")
    book.load_snapshot({"seq": 1, "strategies": [
        {"strategy_id": "s", "active": True, "weight": 1.0}]}, now=0.0)
    book.control({"seq": 2, "step": "freeze", "plan_id": "p"}, now=0.0)
    book.apply_event({"seq": 3, "strategy_id": "s", "active": True, "weight": 0.4}, now=0.0)
    assert verdict(book, "s", 0.0, 30.0).kind == "hold"
    book.control({"seq": 3, "step": "unfreeze", "plan_id": "p"}, now=0.0)  # a repeat: ignored
    assert verdict(book, "s", 0.0, 30.0).kind == "hold"
    book.control({"seq": 4, "step": "unfreeze", "plan_id": "p"}, now=0.0)
    v = verdict(book, "s", 0.0, 30.0)
    assert (v.kind, v.weight) == ("trade", 0.4)
    # one stream carries events and control events in seq order: a control event below a
    # seq already seen means the world restarted its seqs, and the gate holds from then on
    book.control({"seq": 2, "step": "unfreeze", "plan_id": "p"}, now=0.0)
    v = verdict(book, "s", 0.0, 30.0)
    assert (v.kind, v.cause) == ("hold", "world_restarted")


def test_recovery_on_startup_unfreezes_as_the_stored_step_says(store_url):
    store = open_store(store_url)
    store.create_world(WorldInfo(id="w"))
    store.control_step("w", "before", "p1", "freeze", target={})
    store.control_step("w", "before", "p1", "drain")
    store.close()
    app = create_app(store_url, insecure_dev=True)
    try:
        svc_store = app.state.service.store
        assert svc_store.frozen("w") is None
        rows = {r["apply_id"]: r for r in svc_store.applies_of("w")}
        assert (rows["before"]["step"], rows["before"]["outcome"]) == ("unfreeze", "rolled back")
        audit = [a["action"] for a in svc_store.audit_log("w", newest_first=True)]
        assert audit[0] == "apply_unfreeze"
    finally:
        app.state.service.store.close()
    store = open_store(store_url)
    store.control_step("w", "after", "p2", "freeze", target={})
    with store.transaction() as conn:  # a switch committed, then the crash
        from sqlalchemy import select

        from world_api.service import tables as t
        seq = conn.execute(select(t.worlds.c.seq).where(t.worlds.c.id == "w")).scalar_one()
        seq = store.control(conn, "w", int(seq), "after", "p2", "switch")
        conn.execute(t.worlds.update().where(t.worlds.c.id == "w").values(seq=seq))
    store.close()
    app = create_app(store_url, insecure_dev=True)
    try:
        rows = {r["apply_id"]: r for r in app.state.service.store.applies_of("w")}
        assert rows["after"]["outcome"] == "applied"
    finally:
        app.state.service.store.close()
