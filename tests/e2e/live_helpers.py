"""Helpers of the live tests: a world served for real, bars published to Tansu, a catalog."""

from __future__ import annotations

import contextlib
import json
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
