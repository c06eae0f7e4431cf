"""``qmtl world override | plan | apply | status`` against a real server: an operator pins a
strategy off, sees it in status, switches the world to manual allocation, plans and applies
with a weight override; bad input exits 2 with a clear message."""

from __future__ import annotations

import httpx
from typer.testing import CliRunner

from qmtl.cli import app as cli
from tests.world_api.conftest import serve
from tests.world_api.service.conftest import update
from world_api.service.app import create_app

RUN = CliRunner()


def _cli(url: str, *args: str):
    return RUN.invoke(cli, ["world", *args, "--url", url], env={"COLUMNS": "200"})


def test_operator_pins_off_then_applies_a_manual_plan(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    try:
        with serve(app) as url, httpx.Client(base_url=url) as http:
            http.post("/worlds", json={"id": "w"})
            http.put("/worlds/w/policy", content="top_k: 2\n")
            http.post("/worlds/w/metrics", json=[update("a", 1, 2.0, world="w"),
                                                 update("b", 1, 1.0, world="w")])
            r = _cli(url, "override", "w", "a", "--state", "inactive", "--reason",
                     "broker outage", "--for", "2h")
            assert r.exit_code == 0, r.output
            assert "'a' forced inactive for 2h" in r.output
            http.post("/worlds/w/metrics", json=[update("a", 2, 5.0, world="w")])
            status = _cli(url, "status", "w")
            assert status.exit_code == 0 and "override: broker outage" in status.output
            assert http.get("/worlds/w/allocations").json()["weights"] == {"b": 1.0}

            http.put("/worlds/w/policy", content="top_k: 2\nallocation: {mode: manual}\n")
            assert _cli(url, "override", "w", "a", "--clear").exit_code == 0
            planned = _cli(url, "plan", "w")
            assert planned.exit_code == 0, planned.output
            plan_id = http.get("/worlds/w/audit", params={"action": "plan"}).json()[0][
                "detail"]["plan_id"]
            assert plan_id in planned.output
            applied = _cli(url, "apply", "w", plan_id, "--weight", "a=0.25", "--drain", "0")
            assert applied.exit_code == 0, applied.output
            steps = [ln.split()[2] for ln in applied.output.splitlines()
                     if ln.startswith("seq") and ln.split()[2] in
                     ("freeze", "drain", "switch", "unfreeze")]
            assert steps == ["freeze", "drain", "switch", "unfreeze"]
            assert http.get("/worlds/w/allocations").json()["weights"] == {"a": 0.25, "b": 0.5}

            bad = _cli(url, "override", "w", "a", "--state", "inactive")
            assert bad.exit_code == 2 and "give --reason" in bad.output
            bad = _cli(url, "apply", "w", plan_id, "--weight", "a=lots")
            assert bad.exit_code == 2 and "SID=WEIGHT" in bad.output
            again = _cli(url, "apply", "w", plan_id)
            assert again.exit_code != 0 and "already applied" in again.output
    finally:
        app.state.service.store.close()
