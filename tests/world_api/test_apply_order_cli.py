"""``qmtl world apply`` prints the apply's steps and the activation events it caused in seq
order, against a real server (before, every step came first, then the events)."""

from __future__ import annotations

import re

import httpx
from typer.testing import CliRunner

from qmtl.cli import app as cli
from tests.world_api.conftest import serve
from tests.world_api.service.conftest import update
from world_api.service.app import create_app


def test_apply_prints_its_steps_in_seq_order(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    try:
        with serve(app) as url, httpx.Client(base_url=url) as http:
            http.post("/worlds", json={"id": "w"})
            http.put("/worlds/w/policy", content="top_k: 2\nallocation: {mode: manual}\n")
            http.post(
                "/worlds/w/metrics",
                json=[update("a", 1, 2.0, world="w"), update("b", 1, 1.0, world="w")],
            )
            plan_id = http.post("/worlds/w/allocations/plan").json()["plan_id"]
            r = CliRunner().invoke(
                cli,
                ["world", "apply", "w", plan_id, "--drain", "0", "--url", url],
                env={"COLUMNS": "200"},
            )
            assert r.exit_code == 0, r.output
            lines = [ln for ln in r.output.splitlines() if ln.startswith("seq")]
            seqs = [int(re.match(r"seq\s+(\d+)", ln).group(1)) for ln in lines]
            steps = [ln.split()[2] for ln in lines]
            assert any(s.endswith(":") for s in steps), r.output  # activation events printed
            assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), r.output
            assert steps[0] == "freeze" and steps[-1] == "unfreeze", r.output
    finally:
        app.state.service.store.close()
