"""``qmtl world update | delete``, ``qmtl world create --preset`` and the default world of
``qmtl submit``, against a real uvicorn WorldService."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli import app as cli_app
from qmtl.cli.world_config import default_world
from tests.qmtl.cli.test_world import post
from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.domain.presets import preset
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

ROOT = Path(__file__).resolve().parents[3]
POLICY = "top_k: 2\ngates: {sharpe: '>= 0.5'}\n"


@pytest.fixture
def world(tmp_path):
    """A served WorldService with an operator token and a paper world ``w`` in which
    strategy ``a`` is active (holds positions) and ``b`` is rejected."""
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    with serve(create_app(store)) as url:
        with WorldServiceClient(url, op) as client:
            client.create_world("w", mode="paper")
            client.put_policy("w", POLICY)
        post(url, op, "w", ("a", 1, 1.2), ("b", 1, 0.1))
        yield url, op
    store.close()


def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli_app, list(args), input=input, env=env)


def test_update_changes_what_is_given(world):
    url, op = world
    got = invoke("world", "update", "w", "--capital", "250000", "--name", "Demo",
                 "--url", url, "--token", op)
    assert got.exit_code == 0, got.output
    assert "name 'Demo', capital 250000, mode paper" in got.output
    with WorldServiceClient(url, op) as client:
        info = client.world("w")
    assert (info["name"], info["capital"], info["mode"]) == ("Demo", 250000.0, "paper")
    none = invoke("world", "update", "w", "--url", url, "--token", op)
    assert none.exit_code == 1 and "nothing to update" in none.output
    bad = invoke("world", "update", "w", "--mode", "moon", "--url", url, "--token", op)
    assert bad.exit_code == 1 and "mode" in bad.output


def test_delete_asks_refuses_while_positions_are_held_and_forces(world):
    url, op = world
    common = ("--url", url, "--token", op)
    no = invoke("world", "delete", "w", *common, input="n\n")
    assert no.exit_code == 1 and "not deleted" in no.output
    held = invoke("world", "delete", "w", "--yes", *common)
    assert held.exit_code == 1 and "holding positions (a)" in held.output
    with WorldServiceClient(url, op) as client:
        assert client.world("w")["id"] == "w"  # still there
    forced = invoke("world", "delete", "w", "--force", *common, input="y\n")
    assert forced.exit_code == 0, forced.output
    assert "deleted world 'w'" in forced.output and "1 held positions (a)" in forced.output
    gone = invoke("world", "status", "w", *common)
    assert gone.exit_code == 1 and "unknown world 'w'" in gone.output


def test_create_with_a_preset(world):
    url, op = world
    common = ("--url", url, "--token", op)
    for name in ("conservative", "balanced", "aggressive"):
        got = invoke("world", "create", f"p-{name}", "--preset", name, *common)
        assert got.exit_code == 0, got.output
        assert f"policy from preset {name!r} is version 2" in got.output
        with WorldServiceClient(url, op) as client:
            stored = client.policy(f"p-{name}")["policy"]
        assert stored == preset(name).model_dump(mode="json")
    bad = invoke("world", "create", "p-x", "--preset", "risky", *common)
    assert bad.exit_code == 1 and "unknown preset 'risky'" in bad.output
    both = invoke("world", "create", "p-y", "--preset", "balanced", "--policy", "x.yaml",
                  *common)
    assert both.exit_code == 1 and "not both" in both.output
    with WorldServiceClient(url, op) as client:
        assert {w["id"] for w in client.list_worlds()} == {
            "w", "p-conservative", "p-balanced", "p-aggressive"}


def test_default_world_precedence(tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("QMTL_CONFIG", str(config))
    monkeypatch.delenv("QMTL_WORLD", raising=False)
    import typer

    with pytest.raises(typer.Exit):
        default_world(None)
    config.write_text('world = "from-file"\n')
    assert default_world(None) == "from-file"
    monkeypatch.setenv("QMTL_WORLD", "from-env")
    assert default_world(None) == "from-env"
    assert default_world("given") == "given"
    monkeypatch.delenv("QMTL_WORLD")
    config.write_text("world = 3\n")
    with pytest.raises(typer.Exit):
        default_world(None)
    config.write_text("world = \n")
    with pytest.raises(typer.Exit):
        default_world(None)


def test_submit_without_a_world(tmp_path, monkeypatch):
    seen: list[str] = []

    def fake(strategy, world, *a, **kw):
        seen.append(world)
        raise RuntimeError("stop here")

    import importlib

    monkeypatch.setattr(importlib.import_module("qmtl.submit"), "submit", fake)
    strat = str(ROOT / "examples" / "sma_cross.py")
    missing = tmp_path / "none.toml"
    env = {"QMTL_CONFIG": str(missing), "QMTL_WORLD": ""}
    got = invoke("submit", strat, env=env)
    assert got.exit_code == 1
    assert "no world given: pass --world W, set QMTL_WORLD=W" in " ".join(got.output.split())
    config = tmp_path / "c.toml"
    config.write_text('world = "demo"\n')
    got = invoke("submit", strat, env={"QMTL_CONFIG": str(config), "QMTL_WORLD": ""})
    assert "stop here" in got.output and seen == ["demo"]
    got = invoke("submit", strat, env={"QMTL_CONFIG": str(config), "QMTL_WORLD": "envw"})
    got = invoke("submit", strat, "--world", "flag",
                 env={"QMTL_CONFIG": str(config), "QMTL_WORLD": "envw"})
    assert seen == ["demo", "envw", "flag"]


@pytest.mark.parametrize("metrics_token", [None, "scrape-me"])
def test_serve_log_json_and_metrics_token(tmp_path, metrics_token):
    """`qmtl world serve --log-json`: every stderr line is JSON, a request's carries its id;
    `--metrics-token` guards /metrics and nothing else."""
    import json
    import os
    import subprocess
    import sys
    import time

    import httpx

    from tests.world_api.conftest import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "qmtl.cli", "world", "serve", "--insecure-dev", "--log-json",
           "--port", str(port), "--store", str(tmp_path / "w.db")]
    if metrics_token:
        cmd += ["--metrics-token", metrics_token]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
                break
            except httpx.HTTPError:
                assert time.time() < deadline and proc.poll() is None
                time.sleep(0.2)
        r = httpx.post(f"{base}/worlds", json={"id": "w"}, headers={"X-Request-ID": "cli-77"})
        assert r.status_code == 201 and r.headers["x-request-id"] == "cli-77"
        scraped = httpx.get(f"{base}/metrics")
        if metrics_token:
            assert scraped.status_code == 401
            scraped = httpx.get(f"{base}/metrics",
                                headers={"Authorization": f"Bearer {metrics_token}"})
        assert scraped.status_code == 200
        assert 'qmtl_world_request_seconds_count{method="POST",route="/worlds",status="201"} 1.0' \
            in scraped.text
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(x) for x in lines)
    mine = [x for x in lines if x.get("request_id") == "cli-77"]
    assert [(x["route"], x["status"]) for x in mine] == [("/worlds", 201)]
    assert any(x["logger"].startswith("uvicorn") for x in lines)  # uvicorn's own, as JSON
