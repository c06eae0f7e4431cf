"""``qmtl world``: create (what the messages say), policy, status and the events command,
against a real uvicorn WorldService."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from qmtl.cli import app as cli_app
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import free_port, serve
from tests.world_api.service.conftest import update
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

ROOT = Path(__file__).resolve().parents[3]
POLICY = "top_k: 2\ngates: {sharpe: '>= 0.5'}\n"


@pytest.fixture
def world(tmp_path):
    """A served WorldService with an operator token."""
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    with serve(create_app(store)) as url:
        yield url, op
    store.close()


def invoke(*args: str):
    return CliRunner().invoke(cli_app, ["world", *args], env={"COLUMNS": "160"})


def post(url: str, token: str, world: str, *items: tuple[str, int, float],
         mode: str = "backtest") -> list[dict]:
    ups = [MetricsUpdate.model_validate({**update(s, q, sh, world=world, run=f"{mode}-1"),
                                         "mode": mode}) for s, q, sh in items]
    with WorldServiceClient(url, token) as client:
        return client.post_metrics(world, ups)["events"]


def test_create_says_which_policy_version_it_made(world, tmp_path):
    url, op = world
    plain = invoke("create", "plain", "--url", url, "--token", op)
    assert plain.exit_code == 0, plain.output
    assert "created world 'plain' with the default policy (version 1)" in plain.output

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    made = invoke("create", "demo", "--policy", str(policy), "--url", url, "--token", op)
    assert made.exit_code == 0, made.output
    with WorldServiceClient(url, op) as client:
        version = client.world("demo")["policy_version"]
        assert client.policy("demo")["policy"]["top_k"] == 2
    # the message names the version the world now has, and why it is not 1
    said = " ".join(made.output.split())
    assert version == 2 and f"is version {version}" in said
    assert "version 1 is the default" in said

    again = invoke("create", "demo", "--url", url, "--token", op)
    assert again.exit_code == 1 and "already exists" in again.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("gates: {sharpee: '>= 1'}")
    refused = invoke("create", "other", "--policy", str(bad), "--url", url, "--token", op)
    assert refused.exit_code == 1 and "invalid policy" in refused.output
    with WorldServiceClient(url, op) as client:  # checked before anything was created
        assert [w["id"] for w in client.list_worlds()] == ["demo", "plain"]


def test_policy_and_status(world, tmp_path):
    url, op = world
    assert invoke("create", "demo", "--url", url, "--token", op).exit_code == 0
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    out = invoke("policy", "demo", str(policy), "--url", url, "--token", op)
    assert out.exit_code == 0 and "policy version 2, 0 activation events" in out.output
    post(url, op, "demo", ("alpha", 1, 1.5), ("beta", 1, 0.2))
    status = invoke("status", "demo", "--url", url, "--token", op)
    assert status.exit_code == 0, status.output
    assert "alpha" in status.output and "active" in status.output
    assert "beta" in status.output and "rejected" in status.output
    # the world's own return: alpha's paper run reports after its backtest activated it (a
    # backtest earns the world nothing; the paper returns are realized)
    post(url, op, "demo", ("alpha", 2, 1.5), mode="paper")  # its bars after the backtest's
    with WorldServiceClient(url, op) as client:
        want = client.world_metrics("demo")
    assert (want["realized"]["n_bars"], want["pro_forma"]["n_bars"]) == (30, 60)
    lines = invoke("status", "demo", "--url", url, "--token", op).output.splitlines()
    realized = next(line for line in lines if "realized" in line).replace("│", " ").split()
    pro_forma = next(line for line in lines if "pro forma" in line).replace("│", " ").split()
    sharpe = want["pro_forma"]["metrics"]["sharpe"]
    assert realized[realized.index("realized") + 1] == "30"
    assert pro_forma[pro_forma.index("forma") + 1 : pro_forma.index("forma") + 3] == [
        "60", f"{sharpe:.4f}"]
    said = " ".join(line for line in lines if "share" in line)
    assert "the active strategies share 60 bars (" in said  # alpha alone: all its bars


def test_events_command_prints_each_event_once(world):
    url, op = world
    assert invoke("create", "demo", "--url", url, "--token", op).exit_code == 0
    written = post(url, op, "demo", ("a", 1, 1.0), ("b", 1, 2.0), ("c", 1, 3.0))
    assert len(written) >= 3
    out = invoke("events", "demo", "--url", url, "--token", op)
    assert out.exit_code == 0, out.output
    assert [json.loads(line) for line in out.output.splitlines()] == written
    tail = invoke("events", "demo", "--after", str(written[0]["seq"]), "--url", url,
                  "--token", op)
    assert [json.loads(line) for line in tail.output.splitlines()] == written[1:]

    missing = invoke("events", "nope", "--url", url, "--token", op)
    assert missing.exit_code == 1 and "404" in missing.output
    assert "unknown world 'nope'" in missing.output
    denied = invoke("events", "demo", "--url", url)
    assert denied.exit_code == 1 and "missing bearer token" in denied.output
    offline = invoke("events", "demo", "--url", f"http://127.0.0.1:{free_port()}")
    assert offline.exit_code == 1 and "cannot reach the world service" in offline.output


def test_events_follow_prints_new_events_as_they_come(world):
    url, op = world
    assert invoke("create", "demo", "--url", url, "--token", op).exit_code == 0
    first = post(url, op, "demo", ("a", 1, 1.0))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "from qmtl.cli import main; main()", "world", "events", "demo",
           "--follow", "--url", url, "--token", op]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert first
        for event in first:  # what was there
            assert json.loads(proc.stdout.readline()) == event
        later = post(url, op, "demo", ("b", 1, 2.0))  # and what comes while following
        assert later
        for event in later:
            assert json.loads(proc.stdout.readline()) == event
        assert proc.poll() is None  # still following
    finally:
        proc.terminate()
        proc.wait(30)
