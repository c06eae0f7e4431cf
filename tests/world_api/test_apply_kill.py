"""A plan apply interrupted by ``kill -9`` of the world server at a random step ends, after
restart, in either the old or the new allocation (never a mix) and never stays frozen:
recovery on startup finishes an apply whose switch committed and rolls back any other.

The server runs as a subprocess (``qmtl world serve``) with ``QMTL_WORLD_APPLY_PAUSE`` so
each step stays stored for a while, and is killed at a point of the apply's *progress* drawn
at random: as soon as the request is sent, or once its ``freeze``, ``drain`` or ``switch``
step is stored (read from the world's events). Every point is drawn at least once in any
four kills, so a run reaches both ends, and nothing is timed by the clock: a loaded machine
only makes it slower.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from qmtl.core.contracts import ControlEvent
from tests.world_api.conftest import backend_url, free_port
from tests.world_api.service.conftest import update
from world_api.client import WorldServiceClient

ROOT = Path(__file__).resolve().parents[2]
PAUSE = 0.25  # seconds after each stored step; the apply takes about 4 x PAUSE + drain
DRAIN = 0.25


class Server:
    """``qmtl world serve`` on ``store`` in a subprocess that a test kills with SIGKILL."""

    def __init__(self, store: str, tmp: Path) -> None:
        self.store, self.port = store, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "QMTL_WORLD_APPLY_PAUSE": str(PAUSE)}
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qmtl.cli", "world", "serve", "--store", self.store,
                 "--insecure-dev", "--port", str(self.port)],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.url}/worlds", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            time.sleep(0.1)
        raise AssertionError("server did not start: " + self.log.read_text()[-2000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


def _weights(url: str) -> dict[str, float]:
    return httpx.get(f"{url}/worlds/w/allocations", timeout=10).json()["weights"]


def _same(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(math.isclose(a[k], b[k], abs_tol=1e-12) for k in a)


def kill_during_applies(store: str, tmp: Path, kills: int, seed: int) -> list[str]:
    """Run ``kills`` applies, each killed at a random time; check every restart; return
    what each ended as (``old``/``new``)."""
    rng = random.Random(seed)
    points: list[str | None] = [None, "freeze", "drain", "switch"]
    rng.shuffle(points)
    server = Server(store, tmp).start()
    url = server.url
    outcomes = []
    try:
        assert httpx.post(f"{url}/worlds", json={"id": "w"}).status_code == 201
        httpx.put(f"{url}/worlds/w/policy", content="top_k: 3\nallocation: {method: equal}\n")
        httpx.post(f"{url}/worlds/w/metrics", json=[
            update(s, 1, 1.0 + i, world="w") for i, s in enumerate("abc")])
        for _ in range(kills):
            old = _weights(url)
            plan = httpx.post(f"{url}/worlds/w/allocations/plan").json()
            raw = [rng.uniform(0.05, 1.0) for _ in range(3)]
            new = {s: round(r / sum(raw), 6) * 0.99 for s, r in zip("abc", raw, strict=True)}
            body = {"plan_id": plan["plan_id"], "overrides": new, "drain": DRAIN}
            point = points[len(outcomes) % len(points)]
            t = threading.Thread(target=lambda b=body: _post_quietly(url, b), daemon=True)
            t.start()
            if point is not None:
                _wait_for_step(url, plan["plan_id"], point, t)
            server.kill()
            t.join(30)
            server.start()
            now = _weights(url)
            ended = "old" if _same(now, old) else "new" if _same(now, new) else "mix"
            assert ended != "mix", (old, new, now)
            snap = httpx.get(f"{url}/worlds/w/activation").json()
            assert snap["frozen"] is None, snap
            with WorldServiceClient(url) as client, client.events("w") as stream:
                control = [e for e in stream if isinstance(e, ControlEvent)
                           and e.plan_id == plan["plan_id"]]
            if control:  # the freeze was stored: the apply ended unfrozen, as it says
                assert control[-1].step == "unfreeze", control
                assert control[-1].outcome == ("applied" if ended == "new" else "rolled back")
            else:
                assert ended == "old"
            outcomes.append(ended)
    finally:
        server.kill()
    return outcomes


def _wait_for_step(url: str, plan_id: str, step: str, request: threading.Thread) -> None:
    """Wait until the apply of ``plan_id`` has stored ``step`` (its control event)."""
    deadline = time.monotonic() + 120
    while True:
        alive = request.is_alive()  # before the read: a step stored after it is seen next
        with WorldServiceClient(url) as client, client.events("w") as stream:
            if any(isinstance(e, ControlEvent) and e.plan_id == plan_id and e.step == step
                   for e in stream):
                return
        assert alive, f"the apply ended without storing a {step!r} step"
        assert time.monotonic() < deadline, f"the apply stored no {step!r} step in 120 s"
        time.sleep(0.02)


def _post_quietly(url: str, body: dict) -> None:
    try:
        httpx.post(f"{url}/worlds/w/allocations/apply", json=body, timeout=30)
    except httpx.HTTPError:
        pass  # killed mid-request


def test_kill_9_during_apply_sqlite(tmp_path):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    outcomes = kill_during_applies(str(tmp_path / "w.db"), tmp_path, kills=4, seed=seed)
    assert len(outcomes) == 4
    assert {"old", "new"} <= set(outcomes), outcomes  # every kill point was drawn once


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_during_apply_many(backend, tmp_path):
    seed = random.randrange(1 << 30)
    print("seed", seed)
    for store in backend_url(backend, tmp_path, "w.db", create_schema=True):
        outcomes = kill_during_applies(store, tmp_path, kills=12, seed=seed)
        assert len(outcomes) == 12
        # a kill before the freeze or after it ends old; one after the switch ends new
        assert {"old", "new"} <= set(outcomes), outcomes
