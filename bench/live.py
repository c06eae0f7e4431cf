"""Live loop speed: bar published -> OrderIntent consumed, through Kafka (Tansu), the world and
the gate; and bars/s sustained through the graph by one worker.

    python bench/live.py            # latency at 1,000 bars/s and throughput, 1 and 100 symbols
    python bench/live.py --quick    # shorter runs

Every part is real and runs in its own process, as in production: Tansu (the Kafka-compatible
broker from the dev extras), the WorldService (``qmtl world serve``, SQLite) and the live run
(``qmtl run --mode live --paper``); this process publishes bars and consumes the orders topic.

- latency: a strategy whose target weight moves on every bar (so every bar makes an order)
  runs while bars are published at a fixed rate; each OrderIntent's arrival on the orders
  topic is matched to its bar's publication (key = world/strategy/symbol/bar ts). The first
  fifth is left out (connections, caches). Metrics go to the world every 50 bars (20 a
  second at 1,000 bars/s; every bar would load the world with 1,000 updates a second, which
  is its own benchmark, bench/world.py). With 100 symbols a bar time's 100 bars are published
  together and the portfolio acts once all have arrived, so a bar's latency includes waiting
  for the rest of its time.
- throughput: bars are published ahead (a backlog), then an SMA(10)/SMA(50) cross runs over
  them; bars/s is counted from the run's start line to its exit (one Bytewax worker).

Prints a table and writes ``bench/results/live.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS,
    Tansu,
    free_ports,
    machine,
    print_table,
    wait_port,
    write_results,
)
from connectors.data.synthetic import generate_bars  # noqa: E402
from connectors.live.bar_codec import encode_bar  # noqa: E402
from connectors.live.feeds import CatalogFeed, ensure_topic  # noqa: E402
from connectors.live.kafka_io import publish_bars  # noqa: E402

STRATEGIES = """
from qmtl import Strategy

class Jitter(Strategy):
    interval = "1m"
    def signal(self, bars):
        return bars.close / bars.close.shift(1) - 0.5    # moves on every bar: an order a bar

class Sma(Strategy):
    interval = "1m"
    def signal(self, bars):
        return bars.close.sma(10) > bars.close.sma(50)
"""


def cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-c", "from qmtl.cli import main; main()", *args],
                            env=env, cwd=ROOT, text=True, **kw)


@contextlib.contextmanager
def world(tmp: Path) -> Iterator[str]:
    """``qmtl world serve`` in a subprocess; world "bench" with an empty policy."""
    (port,) = free_ports(1)
    proc = cli("world", "serve", "--insecure-dev", "--port", str(port), "--store",
               str(tmp / "world.db"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    RUNNING.append(proc)
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}"
        httpx.post(f"{url}/worlds", json={"id": "bench"}).raise_for_status()
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


RUNNING: list[subprocess.Popen] = []
"""Child processes, killed when the benchmark ends however it ends."""


def activate(url: str, strategy: str) -> None:
    """A first metrics update for ``strategy``, so that the world activates it."""
    body = {"world": "bench", "strategy_id": strategy, "run_id": "pre", "seq": 1,
            "mode": "paper", "as_of": 0, "n_bars": 1, "metrics": {"sharpe": 1.0}}
    httpx.post(f"{url}/worlds/bench/metrics", json=body).raise_for_status()


def live(tmp: Path, strategy: str, symbols: list[str], brokers: str, topic: str, url: str,
         max_bars: int, orders_topic: str, stdout: Any = subprocess.DEVNULL,
         metrics_every: int = 50) -> subprocess.Popen:
    return cli("run", "--mode", "live", f"{tmp / 'strategies.py'}:{strategy}", "--symbols",
               ",".join(symbols), "--brokers", brokers, "--topic", topic, "--world", "bench",
               "--url", url, "--paper", "--warmup", "0", "--max-bars", str(max_bars),
               "--orders-store", str(tmp / f"orders-{topic}.db"), "--orders-topic", orders_topic,
               "--data", str(tmp / "no-catalog"), "--metrics-every", str(metrics_every),
               stdout=stdout, stderr=subprocess.PIPE)


def started(proc: subprocess.Popen, timeout: float = 60.0) -> float:
    """Wait for the run's start line; return when it came."""
    box: dict[str, float] = {}

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith(("starting", "resuming")) and "t" not in box:
                box["t"] = time.perf_counter()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.time() + timeout
    while "t" not in box:
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError("the live run did not start")
        time.sleep(0.01)
    return box["t"]


def latency(tmp: Path, brokers: str, url: str, n_symbols: int, rate: float,
            seconds: float) -> dict:
    """Publish at ``rate`` bars/s for ``seconds``; match orders to bars."""
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    times = int(rate * seconds / n_symbols)
    data = {s: generate_bars(times, interval="1m", seed=i) for i, s in enumerate(symbols)}
    topic, orders = f"lat-{n_symbols}-bars", f"lat-{n_symbols}-orders"
    ensure_topic(brokers, topic)
    ensure_topic(brokers, orders)
    activate(url, "Jitter")
    arrivals: dict[str, int] = {}
    stop = threading.Event()
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{time.time_ns()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    consumer.assign([TopicPartition(orders, 0, OFFSET_BEGINNING)])

    def consume() -> None:
        while not stop.is_set():
            m = consumer.poll(0.05)
            if m is not None and not m.error():
                arrivals.setdefault(m.key().decode(), time.time_ns())

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    proc = live(tmp, "Jitter", symbols, brokers, topic, url, n_symbols * times, orders)
    RUNNING.append(proc)
    started(proc)
    time.sleep(1.0)  # the consumer group joins
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": 1})
    published: dict[str, int] = {}
    t0 = time.perf_counter()
    every = n_symbols / rate
    for k in range(times):
        due = t0 + k * every
        while (wait := due - time.perf_counter()) > 0:
            time.sleep(min(wait, 0.001))
        for s in symbols:
            row = {c: v[k] for c, v in data[s].items()}
            published[f"bench/Jitter/{s}/{int(row['ts'])}"] = time.time_ns()
            producer.produce(topic, key=s.encode(), value=encode_bar(row))
        producer.poll(0)
    producer.flush(30)
    proc.wait(120)
    time.sleep(1.0)
    stop.set()
    reader.join(5)
    consumer.close()
    skip = int(times * 0.2)  # leave out the first fifth
    kept = {key: t for key, t in published.items()
            if int(key.rsplit("/", 1)[1]) >= int(data[symbols[0]]["ts"][skip])}
    lat = np.array([(arrivals[k] - t) / 1e6 for k, t in kept.items() if k in arrivals])
    # where the time goes: bar published -> order stored (the flow) -> consumed (the relay)
    with contextlib.closing(sqlite3.connect(tmp / f"orders-{topic}.db")) as db:
        stored = dict(db.execute("SELECT key, created FROM orders").fetchall())
        unpublished = db.execute("SELECT count(*) FROM orders WHERE published = 0").fetchone()[0]
    flow = np.array([(stored[k] - t) / 1e6 for k, t in kept.items() if k in stored])
    relay = np.array([(arrivals[k] - stored[k]) / 1e6 for k in kept if k in stored
                      and k in arrivals])
    return {
        "symbols": n_symbols, "rate": rate, "bars": n_symbols * times, "orders": len(lat),
        "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()), "flow_p50_ms": float(np.percentile(flow, 50)),
        "relay_p50_ms": float(np.percentile(relay, 50)), "exit": proc.returncode,
        "stored": len(stored), "consumed": len(arrivals), "unpublished": unpublished,
    }


def broker_hop(brokers: str, rate: float, seconds: float) -> dict:
    """The broker's own latency, the floor under ours: messages produced at ``rate`` to a fresh
    topic and consumed, with the live run's consumer settings (Tansu's in-memory topics get
    slower to read as they grow, so this uses as many messages as a latency run)."""
    topic = f"hop-{time.time_ns()}"
    ensure_topic(brokers, topic)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"hop-{time.time_ns()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 5})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    lat: list[float] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            m = consumer.poll(0.05)
            if m is not None and not m.error():
                lat.append((time.time_ns() - int(m.value())) / 1e6)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(1.0)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0, "acks": 1,
                         "socket.nagle.disable": True})
    n = int(rate * seconds)
    t0 = time.perf_counter()
    for k in range(n):
        while (wait := t0 + k / rate - time.perf_counter()) > 0:
            time.sleep(min(wait, 0.001))
        producer.produce(topic, value=str(time.time_ns()).encode())
        producer.poll(0)
    producer.flush(30)
    time.sleep(1.0)
    stop.set()
    reader.join(5)
    consumer.close()
    kept = np.array(lat[int(len(lat) * 0.2):])
    return {"messages": n, "p50_ms": float(np.percentile(kept, 50)),
            "p99_ms": float(np.percentile(kept, 99))}


def throughput(tmp: Path, brokers: str, url: str, n_symbols: int, bars: int) -> dict:
    """A backlog of ``bars`` bars through one worker."""
    symbols = [f"T{i:03d}" for i in range(n_symbols)]
    per = bars // n_symbols
    data = {s: generate_bars(per, interval="1m", seed=100 + i) for i, s in enumerate(symbols)}
    topic = f"tp-{n_symbols}-bars"
    publish_bars(brokers, topic, CatalogFeed.from_memory(data, speed="max"))
    activate(url, "Sma")
    proc = live(tmp, "Sma", symbols, brokers, topic, url, per * n_symbols, f"tp-{n_symbols}-o",
                stdout=subprocess.PIPE)
    RUNNING.append(proc)
    t0 = started(proc)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(600)
    dt = time.perf_counter() - t0
    # the run's own count: first bar read to the end of the flow (start-up and shutdown out)
    found = re.search(r"live bars\s+at\s+([\d,]+)\s+bars/s", out)
    if found is None:
        raise RuntimeError(f"the live run printed no rate:\n{out}")
    rate = float(found.group(1).replace(",", ""))
    return {"symbols": n_symbols, "bars": per * n_symbols, "seconds_with_startup": dt,
            "bars_per_s": rate, "exit": proc.returncode}


def print_report(lat: list[dict], hop: dict, tp: list[dict]) -> None:
    """The latency and throughput tables."""
    print_table("bar published -> OrderIntent consumed (Tansu, world, gate; 1,000 bars/s)",
                ["symbols", "bars", "orders", "p50 ms", "p99 ms", "max ms", "to store p50",
                 "to topic p50"],
                [[r["symbols"], r["bars"], r["orders"], f"{r['p50_ms']:.2f}",
                  f"{r['p99_ms']:.2f}", f"{r['max_ms']:.1f}", f"{r['flow_p50_ms']:.2f}",
                  f"{r['relay_p50_ms']:.2f}"] for r in lat]
                + [["(broker)", hop["messages"], "-", f"{hop['p50_ms']:.2f}",
                    f"{hop['p99_ms']:.2f}", "-", "-", "-"]],
                align="rrrrrrrr")
    print("(broker): one hop of the broker alone (a bar makes two hops)")
    print_table("sustained through the graph, one worker (a backlog on the topic)",
                ["symbols", "bars", "bars/s", "s, with start-up"],
                [[r["symbols"], r["bars"], f"{r['bars_per_s']:,.0f}",
                  f"{r['seconds_with_startup']:.2f}"] for r in tp], align="rrrr")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    args = ap.parse_args()
    seconds = 3.0 if args.quick else 5.0  # Tansu's topics slow down as they grow: keep them short
    backlog = 40_000 if args.quick else 200_000
    broker = Tansu().start()
    try:
        with tempfile.TemporaryDirectory() as d, world(Path(d)) as url:
            tmp = Path(d)
            (tmp / "strategies.py").write_text(STRATEGIES)
            hop = broker_hop(broker.brokers, 1000.0, seconds)
            lat = [latency(tmp, broker.brokers, url, n, 1000.0, seconds) for n in (1, 100)]
            tp = [throughput(tmp, broker.brokers, url, n, backlog) for n in (1, 100)]
    finally:
        for proc in RUNNING:
            if proc.poll() is None:
                proc.kill()
        broker.stop()
    print_report(lat, hop, tp)
    host = machine()
    out = write_results(RESULTS / "live.json", {
        "machine": host["machine"], "cpus": host["cpus"], "quick": args.quick,
        "broker_hop": hop, "latency": lat, "throughput": tp,
    })
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
