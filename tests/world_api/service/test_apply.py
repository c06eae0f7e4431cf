"""Applying a plan is atomic: concurrent applies of one plan succeed exactly once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.world_api.conftest import serve
from tests.world_api.service.conftest import POLICY_YAML, update
from world_api.service.app import create_app


def test_concurrent_applies_of_one_plan_succeed_once(store_url):
    """20 threads apply the same plan at once against a real server: one 200, nineteen 409,
    and one ``apply`` audit row. The plan changes no weight, so the world's seq does not
    move and only the applied flag can stop the second apply."""
    app = create_app(store_url, insecure_dev=True)
    try:
        with serve(app) as base, httpx.Client(base_url=base, timeout=60) as http:
            assert http.post("/worlds", json={"id": "w1", "capital": 1e6}).status_code == 201
            assert http.put("/worlds/w1/policy", content=POLICY_YAML).status_code == 200
            http.post("/worlds/w1/metrics", json=[update("a", 1, 1.2), update("b", 1, 1.0)])
            plan = http.post("/worlds/w1/allocations/plan").json()
            barrier = threading.Barrier(20)

            def apply(_: int) -> int:
                with httpx.Client(base_url=base, timeout=60) as own:
                    barrier.wait()
                    r = own.post("/worlds/w1/allocations/apply",
                                 json={"plan_id": plan["plan_id"]})
                    return r.status_code

            with ThreadPoolExecutor(20) as pool:
                codes = sorted(pool.map(apply, range(20)))
            assert codes == [200] + [409] * 19, codes
            actions = [a["action"] for a in http.get("/worlds/w1/audit").json()]
            assert actions.count("apply") == 1
    finally:
        app.state.service.store.close()
