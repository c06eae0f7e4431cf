"""kill -9 of a world server (``qmtl world serve`` in a subprocess) at random points under
concurrent writes, on SQLite and PostgreSQL. Writers post one MetricsUpdate at a time and
retry an unanswered one (same idempotency key) until it is acknowledged; event-stream
clients follow the world through ``world_api.client`` and resume with ``Last-Event-ID`` (or
``?after=``) whenever the stream breaks. After the last restart:

- every acknowledged update is in the world exactly once (each carries one return at its
  own time: a strategy's kept returns are exactly its acknowledged seqs, in order);
- the events are numbered 1..n with no hole, and every stream client saw exactly them, in
  order: no gap and no duplicate across the restarts.

Kills are timed by progress (after a random number of acknowledged writes), never by sleeps,
and nothing asserts on time: a loaded machine only makes it slower. Three kills per store in
the default suite; ``-m slow`` adds ten more per store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from qmtl.core.contracts import ActivationEvent
from tests.world_api.conftest import backend_url, free_port
from world_api.client import UnavailableError, WorldServiceClient

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 3
STREAMS = 2
PATIENCE = 240.0
"""Seconds any one wait may take before the test gives up (a loaded machine is slow)."""
POLICY = """
min_bars: 1
gates: {sharpe: ">= 0.5"}
score: {sharpe: 1.0}
top_k: 2
allocation: {method: equal}
"""


class Server:
    """``qmtl world serve`` on one port and store, started and killed at will."""

    def __init__(self, store: str, log: Path) -> None:
        self.store, self.log = store, log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "qmtl.cli", "world", "serve", "--port", str(self.port),
                 "--store", self.store, "--insecure-dev"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        self.starts += 1
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"serve exited:\n{self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.url}/worlds", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not answer in time")

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, "died before its kill"
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Writer(threading.Thread):
    """Posts updates of strategy ``sid`` with seq 1, 2, ... one at a time; an update not
    answered (the server died) is posted again until it is acknowledged."""

    def __init__(self, url: str, sid: str, acked: list[int], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.sid, self.acked, self.stop = url, sid, acked, stop
        self.error: BaseException | None = None
        self.duplicates = 0

    def body(self, seq: int) -> dict:
        return {"world": "w1", "strategy_id": self.sid, "run_id": "r1", "seq": seq,
                "mode": "live", "as_of": seq, "n_bars": seq,
                "metrics": {"sharpe": 1.0 if (seq // 2) % 2 else 0.1},  # flips: events
                "returns": [[seq, 0.001 * (seq % 7 - 3)]]}

    def run(self) -> None:
        seq = 1
        try:
            with httpx.Client(base_url=self.url, timeout=60) as http:
                while not self.stop.is_set():
                    try:
                        r = http.post("/worlds/w1/metrics", json=self.body(seq))
                    except httpx.TransportError:
                        time.sleep(0.05)  # the server is down: same seq again
                        continue
                    assert r.status_code == 200, (r.status_code, r.text)
                    self.duplicates += r.json()["duplicates"]  # stored before the kill
                    self.acked.append(seq)
                    seq += 1
        except BaseException as exc:
            self.error = exc


class Follower(threading.Thread):
    """Follows the world's events, resuming after the last one it saw whenever the stream
    breaks, until it has seen event ``until`` (set once the writes are over)."""

    def __init__(self, url: str, by_header: bool) -> None:
        super().__init__(daemon=True)
        self.client = WorldServiceClient(url, timeout=60)
        self.by_header = by_header
        self.seqs: list[int] = []
        self.until: int | None = None
        self.resumes = 0
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self.until is not None and bool(self.seqs) and self.seqs[-1] >= self.until

    def run(self) -> None:
        try:
            while not self.done():
                last = self.seqs[-1] if self.seqs else None
                where = {"last_event_id": last} if self.by_header else {"after": last}
                try:
                    with self.client.events("w1", follow=True, heartbeat=0.5,
                                            read_timeout=PATIENCE, **where) as stream:
                        for event in stream:
                            if isinstance(event, ActivationEvent):
                                self.seqs.append(event.seq)
                            if self.done():
                                return
                except UnavailableError:
                    self.resumes += 1
                    time.sleep(0.05)
        except BaseException as exc:
            self.error = exc
        finally:
            self.client.close()


def wait_until(cond, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not cond():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path) -> Iterator[str]:
    yield from backend_url(request.param, tmp_path, "world.db")


def crash_test(store: str, tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    server = Server(store, tmp_path / "serve.log")
    server.start()
    stop = threading.Event()
    writers: list[Writer] = []
    followers: list[Follower] = []
    try:
        with WorldServiceClient(server.url) as client:
            client.create_world("w1", "crash")
            client.put_policy("w1", POLICY)
        acked: list[list[int]] = [[] for _ in range(WRITERS)]
        writers = [Writer(server.url, f"s{k}", acked[k], stop) for k in range(WRITERS)]
        followers = [Follower(server.url, by_header=k % 2 == 0) for k in range(STREAMS)]
        for thread in [*writers, *followers]:
            thread.start()

        def total() -> int:
            return sum(len(a) for a in acked)

        for _ in range(kills):  # kill after a random number of acknowledged writes
            target = total() + rng.randint(2, 30)
            wait_until(lambda t=target: total() >= t or any(w.error for w in writers),
                       f"{target} acknowledged writes")
            assert not any(w.error for w in writers), [w.error for w in writers]
            server.kill()
            server.start()
        target = total() + 10  # and some writes after the last restart
        wait_until(lambda: total() >= target or any(w.error for w in writers), "the last writes")
        stop.set()
        for w in writers:
            w.join(PATIENCE)
            assert w.error is None, f"writer {w.sid}: {w.error!r}"

        with WorldServiceClient(server.url) as client:
            for k, w in enumerate(writers):
                assert acked[k] == list(range(1, len(acked[k]) + 1))
                kept = client.strategy_returns("w1", w.sid)["points"]
                times = [p["ts"] if isinstance(p, dict) else p[0] for p in kept]
                assert times == acked[k], f"{w.sid}: stored {times}, acknowledged {acked[k]}"
            events = [e.seq for e in client.event_list("w1")]
        assert events, "the writes caused no event"
        assert events == list(range(1, len(events) + 1)), "a hole or a repeat in the events"
        for f in followers:
            f.until = events[-1]
        for f in followers:
            f.join(PATIENCE)
            assert f.error is None, repr(f.error)
            assert f.seqs == events, "a stream client saw a gap or a duplicate"
        print(f"acked {[len(a) for a in acked]}, redone {[w.duplicates for w in writers]}, "
              f"events {len(events)}, resumes {[f.resumes for f in followers]}")
        assert server.starts == kills + 1
        assert all(f.resumes >= 1 for f in followers)  # the streams did cross the restarts
    finally:
        stop.set()
        for f in followers:
            f.until = -1
        server.stop()


def test_kill_9_under_concurrent_writes_loses_and_repeats_nothing(store, tmp_path):
    crash_test(store, tmp_path, kills=3, seed=16)


@pytest.mark.slow
def test_kill_9_many_times(store, tmp_path):
    crash_test(store, tmp_path, kills=10, seed=61)
