"""The world deploys what it decides, through Tansu and a real ``qmtl world serve``: two
strategies submitted with ``qmtl submit`` and promoted to paper by their backtests are
picked up by one world runner; a third submitted mid-run is added while the first two keep
running (same runs, not restarted); one overridden inactive for good is removed; one whose
stored code no longer builds the graph the world evaluated is refused with both graph ids,
and the others keep running; ``qmtl world status`` shows the runner and its strategies; one
resubmitted under the same id runs its new artifact, afresh."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from qmtl.artifact import artifact_id, build_artifact
from qmtl.cli import app
from qmtl.core.contracts import MetricsUpdate
from qmtl.live import LiveOptions
from qmtl.live.world_runner import RunnerOptions, WorldRunner
from qmtl.loader import load_strategy
from qmtl.submit import submit
from tests.e2e.live_helpers import make_data, publish, slice_data, topic_name, wait_for
from tests.world_api.conftest import free_port
from world_api import runner_client as rc
from world_api.client import WorldServiceClient

ROOT = Path(__file__).resolve().parents[2]
SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Cross(Strategy):
        symbols = ["AAA", "BBB"]
        fast: int = 3
        slow: int = 8

        def signal(self, bars):
            return bars.close.sma(self.fast) > bars.close.sma(self.slow)
""")
POLICY = "promotion:\n  paper: {min_bars: 50}\n"


class WorldServe:
    """``qmtl world serve`` (insecure dev, SQLite) in a subprocess."""

    def __init__(self, tmp: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp / "serve.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "qmtl.cli",
                    "world",
                    "serve",
                    "--insecure-dev",
                    "--store",
                    str(tmp / "world.db"),
                    "--port",
                    self.url.rsplit(":", 1)[1],
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        ok = wait_for(self._up, 60, 0.1)
        assert ok, self.log.read_text()[-2000:]

    def _up(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        try:
            return httpx.get(f"{self.url}/worlds", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def served(tmp_path):
    server = WorldServe(tmp_path)
    try:
        with WorldServiceClient(server.url) as c:
            c.create_world("w")
            c.put_policy("w", POLICY)
        yield server.url
    finally:
        server.stop()


def test_one_runner_follows_the_world(kafka, served, tmp_path):
    url = served
    path = tmp_path / "dev" / "cross.py"
    path.parent.mkdir()
    path.write_text(SOURCE)
    cross = load_strategy(f"{path}:Cross")
    data = make_data(260)
    history = slice_data(data, 0, 120)
    for sid, fast in (("a", 3), ("b", 4)):
        res = submit(cross, "w", url, strategy_id=sid, data=history, fast=fast)
        assert res.artifact_id is not None, res.improvement_hints
    with WorldServiceClient(url) as c:
        assert {v["strategy_id"]: v["stage"] for v in c.strategies("w")} == {
            "a": "paper",
            "b": "paper",
        }
    topic = topic_name()
    feeder = threading.Thread(
        target=publish, args=(kafka.brokers, topic, slice_data(data, 120, 260), "40/s"), daemon=True
    )
    feeder.start()
    events: list[tuple[str, str, str]] = []
    runner = WorldRunner(
        RunnerOptions(
            world="w", url=url, runner_id="r1", state_dir=tmp_path / "state", ttl=3.0, heartbeat=0.3
        ),
        LiveOptions(
            brokers=kafka.brokers,
            topic=topic,
            paper=True,
            data=tmp_path / "none",
            warmup=0,
            snapshot_interval=0.2,
        ),
        on_event=lambda *e: events.append(e),
    )
    stop = threading.Event()
    loop = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert wait_for(lambda: set(runner.runs) == {"a", "b"}, 60), events
        first = {s: runner.runs[s] for s in ("a", "b")}
        assert wait_for(lambda: all(r.stats.live_bars > 0 for r in first.values()), 60)
        # a third strategy submitted mid-run is added; the first two keep their runs
        submit(cross, "w", url, strategy_id="c", data=history, fast=5)
        assert wait_for(lambda: "c" in runner.runs, 60), events
        assert all(runner.runs[s] is first[s] and first[s].thread.is_alive() for s in first)
        # a strategy whose stored code changed since its evaluation is refused
        with WorldServiceClient(url) as c:
            c.post_metrics(
                "w",
                [
                    MetricsUpdate(
                        world="w",
                        strategy_id="d",
                        run_id="bt",
                        seq=1,
                        mode="backtest",
                        as_of=0,
                        n_bars=100,
                        metrics={"sharpe": 1.0},
                    )
                ],
            )
            good = build_artifact(cross(fast=6), "d", ["AAA", "BBB"])
            bad = dict(good, files={"cross.py": SOURCE.replace("self.slow)", "self.slow + 2)")})
            bad["id"] = artifact_id(bad)
            rc.put_artifact(c, "w", bad)
        assert wait_for(lambda: "d" in runner.refused, 60), events
        why = runner.why["d"]
        assert why.startswith(
            f"strategy d changed since it was evaluated: graph id {good['graph_id']} != "
        )
        # overridden inactive for good: removed, the others keep running
        with WorldServiceClient(url) as c:
            c.put_override("w", "b", "inactive", "retired")
        assert wait_for(lambda: "b" not in runner.runs, 60), events
        assert not first["b"].thread.is_alive() and first["b"].error is None
        assert runner.runs["a"] is first["a"] and first["a"].thread.is_alive()
        assert "c" in runner.runs and "d" not in runner.runs
        with WorldServiceClient(url) as c:
            # b's lease is given back by the heartbeat after its run stopped
            assert wait_for(lambda: rc.runners(c, "w")[0]["strategies"] == ["a", "c"], 30)
            [listed] = rc.runners(c, "w")
            bars_a = c.strategy("w", "a")["n_bars"]
        assert listed["runner"] == "r1" and listed["strategies"] == ["a", "c"]
        assert listed["report"]["refused"]["d"] == why
        assert listed["report"]["strategies"]["a"]["live_bars"] > 0
        out = CliRunner().invoke(app, ["world", "status", "w", "--url", url])
        assert out.exit_code == 0, out.output
        assert "r1" in out.output and "a, c" in out.output
        assert bars_a > 0
        # resubmitted with other parameters under the same id: the runner runs the new one
        again = submit(cross, "w", url, strategy_id="a", data=history, fast=7)
        assert again.artifact_id not in (None, first["a"].artifact_id)
        assert wait_for(
            lambda: "a" in runner.runs and runner.runs["a"].artifact_id == again.artifact_id, 60
        ), events
        assert not first["a"].thread.is_alive() and first["a"].error is None
        assert wait_for(lambda: runner.runs["a"].stats.live_bars > 0, 60)
        kept = [p.name for p in (tmp_path / "state" / "runs").iterdir() if p.name.startswith("a-")]
        assert len(kept) == 2  # the old artifact's folder is kept aside
    finally:
        stop.set()
        loop.join(60)
        feeder.join(60)
    assert not loop.is_alive() and not runner.runs
    with WorldServiceClient(url) as c:
        assert rc.runners(c, "w") == []  # it gave its leases back
