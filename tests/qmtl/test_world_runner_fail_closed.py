"""A world runner that cannot reach its world keeps its runs while its leases may still hold
(a blip), and stops every run once it has gone 0.8 x ttl without renewing them: another
runner may take them over then, so it must not trade beside it."""

from __future__ import annotations

import threading
import time

from connectors.live.source import LiveStats
from dataflows.control import RunControl
from qmtl.live import LiveOptions
from qmtl.live.world_runner import RunnerOptions, StrategyRun, WorldRunner
from tests.world_api.conftest import free_port


def idle_run(sid: str) -> StrategyRun:
    """A run that does nothing until asked to stop."""
    control = RunControl()

    def idle() -> None:
        while not control.stopping:
            time.sleep(0.01)

    run = StrategyRun(sid, "art", control, LiveStats(), threading.Thread(target=idle))
    run.thread.start()
    return run


def test_runs_stop_once_the_leases_cannot_have_been_renewed(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    r = WorldRunner(RunnerOptions(world="w", url=url, ttl=10.0, state_dir=tmp_path),
                    LiveOptions(paper=True))  # fmt: skip
    run = idle_run("s")
    r.runs["s"] = run
    r._last_ok = time.monotonic()  # renewed just now: a failed heartbeat is a blip
    assert r.step() == [] and r.runs == {"s": run} and not run.control.stopping
    r._last_ok = time.monotonic() - 9.0  # 0.9 x ttl ago: the lease may be gone
    assert r.step() == []
    assert r.runs == {} and run.control.stopping and not run.thread.is_alive()
    r.client.close()
