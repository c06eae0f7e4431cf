"""A live paper run honours a world's two-phase apply: while the world is frozen (freeze,
drain, switch) its gate sends no order, and after unfreeze it trades the new weight."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.e2e.live_helpers import make_data, set_policy, wait_for, write_catalog
from tests.e2e.test_live_gate import Hold, Recorder, Run, World, options

PAUSE = 1.0  # seconds the world waits after each stored step (QMTL_WORLD_APPLY_PAUSE)


def _apply(url: str, overrides: dict[str, float], drain: float) -> dict:
    plan = httpx.post(f"{url}/worlds/w/allocations/plan", timeout=30).json()
    r = httpx.post(f"{url}/worlds/w/allocations/apply", timeout=60,
                   json={"plan_id": plan["plan_id"], "overrides": overrides, "drain": drain})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.slow
def test_a_live_run_holds_orders_while_frozen_and_resumes_after(tmp_path, monkeypatch):
    write_catalog(tmp_path / "catalog", make_data(900))
    world = World(str(tmp_path / "w.db")).start()
    try:
        assert httpx.post(f"{world.url}/worlds", json={"id": "w"}).status_code == 201
        set_policy(world.url, "w", "allocation: {mode: manual}")
        rec = Recorder()
        run = Run(options(tmp_path, world.url), rec, Hold)
        run.start()
        assert wait_for(lambda: httpx.get(f"{world.url}/worlds/w/strategies").json(), 30)
        assert not rec.orders  # manual: reporting does not activate it
        _apply(world.url, {}, drain=0.0)  # the plan activates Hold at weight 1
        assert wait_for(lambda: len(rec.orders) == 2, 30), "no orders after the first plan"

        monkeypatch.setenv("QMTL_WORLD_APPLY_PAUSE", str(PAUSE))
        out: dict = {}
        t_start = time.monotonic()
        applying = threading.Thread(
            target=lambda: out.update(_apply(world.url, {"Hold": 0.4}, drain=0.5)))
        applying.start()
        applying.join(60)
        t_end = time.monotonic()  # the unfreeze was stored just before the answer
        assert [c["step"] for c in out["control"]] == ["freeze", "drain", "switch", "unfreeze"]
        assert wait_for(lambda: len(rec.orders) == 4, 30), "orders did not resume"
        run.join(90)
        assert run.error is None, run.error
    finally:
        world.stop()
    new = [(t, o) for t, o in rec.orders if abs(o.target_weight - 0.2) < 1e-12]
    assert sorted(o.symbol for _, o in new) == ["AAA", "BBB"]
    # the switch was stored about PAUSE s before the unfreeze: a gate that ignored the
    # freeze would have traded the new weight then; this one waited for the unfreeze
    assert all(t >= t_end - PAUSE / 2 for t, _ in new), (t_end, [t for t, _ in new])
    assert not rec.between(t_start, t_end - PAUSE / 2)
    assert len(rec.orders) == 4
