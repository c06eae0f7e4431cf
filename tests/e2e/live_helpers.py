"""Helpers of the live tests: a world served for real, bars published to Tansu, a catalog."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from connectors.live.feeds import CatalogFeed
from connectors.live.kafka_io import publish_bars
from qmtl import Strategy
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.service.app import create_app


class Cross(Strategy):
    """Two symbols, a short look-back, trades often: orders on many bars."""

    symbols = ["AAA", "BBB"]
    fast: int = 3
    slow: int = 8

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def make_data(n: int = 300, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 3):
    """``symbol -> bars`` of ``n`` daily bars each."""
    return {s: generate_bars(n, seed=seed + i) for i, s in enumerate(symbols)}


def slice_data(data, lo: int, hi: int):
    """Rows ``lo:hi`` of every symbol."""
    return {s: {k: v[lo:hi] for k, v in b.items()} for s, b in data.items()}


def write_catalog(root: Path, data) -> Catalog:
    """A catalog holding ``data`` (1d bars)."""
    cat = Catalog(root)
    for s, b in data.items():
        cat.write(s, "1d", b)
    return cat


def topic_name() -> str:
    """A topic of its own for one test."""
    return f"bars-{uuid.uuid4().hex[:8]}"


def publish(brokers: str, topic: str, data, speed: str = "max") -> int:
    """Publish ``data`` to ``topic`` in time order, one JSON message per bar."""
    return publish_bars(brokers, topic, CatalogFeed.from_memory(data, speed=speed))


@contextlib.contextmanager
def world_server(tmp: Path, name: str = "w") -> Iterator[str]:
    """A WorldService (uvicorn, SQLite, no tokens) with world ``name``; yields its URL."""
    app = create_app(str(tmp / f"world-{uuid.uuid4().hex[:6]}.db"), insecure_dev=True)
    with serve(app) as url:
        import httpx

        assert httpx.post(f"{url}/worlds", json={"id": name}).status_code == 201
        yield url


def activate(url: str, world: str, strategy_id: str) -> None:
    """Make ``strategy_id`` active in ``world`` before a run (so orders are deterministic):
    one update from another run; an empty policy activates every strategy that reports."""
    import httpx

    u = MetricsUpdate(world=world, strategy_id=strategy_id, run_id="pre", seq=1,
                      mode="paper", as_of=0, n_bars=1, metrics={"sharpe": 1.0})
    r = httpx.post(f"{url}/worlds/{world}/metrics", content=u.model_dump_json(),
                   headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    snap = httpx.get(f"{url}/worlds/{world}/activation").json()
    assert any(row["strategy_id"] == strategy_id and row["active"]
               for row in snap["strategies"]), snap


def set_policy(url: str, world: str, policy: str) -> None:
    """PUT a new policy (YAML text)."""
    import httpx

    r = httpx.put(f"{url}/worlds/{world}/policy", content=policy)
    assert r.status_code == 200, r.text


def wait_for(predicate, timeout: float = 30.0, every: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(every)
    return False


def consume(brokers: str, topic: str, timeout: float = 5.0) -> list[tuple[bytes, bytes]]:
    """Every ``(key, value)`` on every partition of ``topic`` until ``timeout`` s of
    silence (in order within a partition)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"t{time.time_ns()}",
                  "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(parts)])
    out = []
    quiet = time.time() + timeout
    try:
        while time.time() < quiet:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append((m.key(), m.value()))
                quiet = time.time() + min(timeout, 2.0)
    finally:
        c.close()
    return out


def read_json(path: Path) -> dict:
    """A JSON file."""
    return json.loads(path.read_text())


def max_abs_diff(a, b) -> float:
    """Largest absolute difference of two equal-length arrays."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


class Recorder:
    """Orders and fills as the run reports them, with the wall time they were reported."""

    def __init__(self) -> None:
        self.orders: list[tuple[float, object]] = []
        self.fills: list[tuple[float, object]] = []
        self.lock = threading.Lock()

    def __call__(self, _strategy, intents, fills) -> None:
        now = time.monotonic()
        with self.lock:
            self.orders += [(now, o) for o in intents]
            self.fills += [(now, f) for f in fills]

    def between(self, a: float, b: float) -> list:
        with self.lock:
            return [o for t, o in self.orders if a <= t <= b]


ROOT = Path(__file__).resolve().parents[2]
PATIENCE = 240.0
"""Seconds any one wait of a crash test may take before it fails (a loaded machine is slow,
never wrong)."""


class Live:
    """``qmtl run --mode live`` in a subprocess, with what it printed."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
            "PYTHONPATH", "")])}
        self.args = args
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from qmtl.cli import main; main()", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def trading(self) -> bool:
        """It has started processing bars (it printed an order or a fill)."""
        return any(line.startswith(("order", "fill")) for line in self.lines)

    def output(self, last: int = 4000) -> str:
        """The end of what it printed (waits briefly for the reader to catch up)."""
        self.thread.join(5)
        return "".join(self.lines)[-last:]

    def wait(self, timeout: float = PATIENCE) -> int:
        """Its exit code; a run still going after ``timeout`` s is killed and the test fails
        with what it printed."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"qmtl {' '.join(self.args[:4])} ... did not end in "
                                 f"{timeout:.0f} s; it printed:\n{self.output()}") from None


def bar_times(data) -> list[int]:
    """Every bar time of ``data`` (the union over its symbols), in order."""
    return sorted({int(t) for b in data.values() for t in b["ts"]})


def time_slice(data, lo: int | None, hi: int | None):
    """The rows of every symbol with ``lo <= ts < hi`` (``None``: unbounded)."""
    out = {}
    for s, b in data.items():
        ts = np.asarray(b["ts"])
        keep = np.ones(len(ts), bool)
        if lo is not None:
            keep &= ts >= lo
        if hi is not None:
            keep &= ts < hi
        out[s] = {k: np.asarray(v)[keep] for k, v in b.items()}
    return out


def world_bars(url: str, world: str, strategy_id: str) -> int:
    """How many bars the world has been told ``strategy_id`` ran (its ``n_bars``)."""
    import httpx

    r = httpx.get(f"{url}/worlds/{world}/strategies/{strategy_id}", timeout=30)
    return int(r.json()["n_bars"]) if r.status_code == 200 else 0


def crash_and_resume(args: list[str], *, data, brokers: str, topic: str, url: str,
                     world: str, strategy_id: str, kills: int, rng: random.Random,
                     snapshot_every: float = 0.2) -> list[int]:
    """kill -9 a live run ``kills`` times at random points of its *progress*, then let it
    end; returns, for each restart, how many live bars its snapshot said were done.

    The bars are published in ``kills + 1`` chunks: a run can never finish before the last
    chunk is out, so every kill hits a running flow, however slow the machine. Each start
    is killed once the world has seen it reach a bar drawn at random between where it
    resumed and the end of what is published (it cannot pass that end), then up to three
    snapshot intervals (``--snapshot-interval``) later: kills are placed by the bars
    processed, and a slow machine cannot make one miss. Each wait fails, with the run's
    output, after :data:`PATIENCE` seconds.
    """
    times = bar_times(data)
    n = len(times)
    step = n // (kills + 1)
    assert step >= 20, f"{n} bar times are too few for {kills} kills"
    cuts = [(i + 1) * step + rng.randint(-step // 4, step // 4) for i in range(kills)] + [n]
    publish(brokers, topic, time_slice(data, None, times[cuts[0]]))
    resumed: list[str] = []
    for i in range(kills):
        live = Live(args)
        before = world_bars(url, world, strategy_id)
        # a bar strictly inside what is published: the last few may wait for later bars
        target = rng.randint(before + 1, max(before + 1, cuts[i] - 5))
        deadline = time.monotonic() + PATIENCE
        while world_bars(url, world, strategy_id) < target:
            assert live.proc.poll() is None, (
                f"the run ended before its kill at bar {target}:\n{live.output()}")
            assert time.monotonic() < deadline, (
                f"the run did not reach bar {target} of {cuts[i]} published (from {before}) "
                f"in {PATIENCE:.0f} s:\n{live.output()}")
            time.sleep(0.02)
        # then up to a few snapshot intervals more, so the kill lands anywhere between two
        # snapshots (the run cannot end meanwhile: the rest of the bars are not out yet)
        time.sleep(rng.uniform(0.0, 3 * snapshot_every))
        assert live.proc.poll() is None, f"the run ended before its kill:\n{live.output()}"
        live.proc.kill()
        live.wait(30)
        resumed += [line for line in live.lines if "resuming from the last snapshot" in line]
        nxt = times[cuts[i + 1]] if cuts[i + 1] < n else None
        publish(brokers, topic, time_slice(data, times[cuts[i]], nxt))
    final = Live(args)
    assert final.wait() == 0, final.output()
    resumed += [line for line in final.lines if "resuming from the last snapshot" in line]
    return [int(line.split(": ")[1].split()[0]) for line in resumed]


def outcome(tmp: Path, name: str, strategy: str) -> dict:
    """What run ``name`` left: its metrics, rows, orders, fills and ``strategy``'s positions."""
    import pyarrow.parquet as pq

    from connectors.live.order_store import open_order_store

    store = open_order_store(str(tmp / name / "orders.db"))
    try:
        return {
            "metrics": read_json(tmp / name / "out" / "metrics.json"),
            "bars": pq.read_table(tmp / name / "out" / "bars.parquet"),
            "orders": [(o.symbol, o.ts, o.target_weight, o.target_qty)
                       for o in store.orders(name)],
            "fills": [(f.symbol, f.ts, f.qty, f.price) for f in store.fills(name)],
            "positions": store.positions(name, strategy),
        }
    finally:
        store.close()
