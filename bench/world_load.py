"""World service under load: single-update requests from many clients, and what idle event
streams cost a write, on SQLite and PostgreSQL, against a real ``qmtl world serve``.

    python bench/world_load.py              # 50 clients x 10 s; 1,000 idle streams
    python bench/world_load.py --quick      # 3 s phases, 200 idle streams
    python bench/world_load.py --store sqlite --seconds 5

A live run posts one MetricsUpdate per bar, so the case that matters is many small requests
at once. Each phase starts the server as a subprocess (what ``qmtl world serve`` runs, with
tokens checked) on a fresh store, then:

* **load**: ``--clients`` connections (kept alive), each one strategy posting its next
  update (one bar's return) as soon as the previous answer arrives: updates/s, p50, p99.
* **idle streams**: the same write load at a fixed 200 updates/s from 10 clients, first
  alone, then with ``--streams`` idle ``GET /events`` subscribers (one per connection,
  spread over tokens so the per-token cap is not what is measured): the p99 of a write with
  and without them, and their ratio.

The client is plain asyncio sockets (HTTP/1.1, kept-alive, requests built up front) so the
load generator costs little of the machine the server shares. Prints a table and writes
``bench/results/world_load.json``. PostgreSQL rows need the server at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
import uvloop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmtl.sweep.cluster import free_ports  # noqa: E402
from world_api.service.auth import create_token  # noqa: E402
from world_api.service.store import WorldInfo, open_store  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
POLICY = """
min_bars: 20
gates: {sharpe: ">= 0.0"}
score: {sharpe: 1.0}
top_k: 10
hysteresis: {margin: 0.1, min_dwell_bars: 5}
allocation: {method: equal, min_change: 0.01}
"""
WORLD = "load"


@dataclass
class Server:
    """A ``qmtl world serve`` subprocess on ``port`` with a developer and viewer tokens."""

    proc: subprocess.Popen[bytes]
    port: int
    developer: str
    viewers: list[str]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(url: str, n_viewers: int) -> Server:
    """A fresh world ``load`` with the bench policy on ``url``, served on a free port."""
    store = open_store(url)
    store.create_world(WorldInfo(id=WORLD))
    developer = create_token(store, "developer")
    viewers = [create_token(store, "viewer", owner=f"viewer{i}") for i in range(n_viewers)]
    store.close()
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from qmtl.cli import app; app()", "world", "serve",
         "--store", url, "--port", str(port),
         # every client here is 127.0.0.1, standing in for many: no per-address cap
         "--max-connections-per-client", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}"
                                   ) from None
            time.sleep(0.1)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/worlds/{WORLD}/policy", data=POLICY.encode(), method="PUT",
        headers={"Authorization": f"Bearer {developer}", "Content-Type": "application/yaml"})
    try:
        urllib.request.urlopen(req, timeout=10).read()
    except urllib.error.HTTPError as exc:  # a developer may not set policy: use the default
        if exc.code != 403:
            raise
    return Server(proc, port, developer, viewers)


def update_request(token: str, sid: str, seq: int, sharpe: float,
                   rng: np.random.Generator) -> bytes:
    """One POST of one MetricsUpdate (bar ``seq`` of strategy ``sid``) as raw HTTP/1.1."""
    ts = 1_700_000_000_000_000_000 + seq * 60_000_000_000
    body = json.dumps({
        "world": WORLD, "strategy_id": sid, "run_id": "r", "seq": seq, "mode": "live",
        "as_of": ts, "n_bars": seq,
        "metrics": {"sharpe": sharpe, "max_drawdown": 0.1},
        "returns": [[ts, float(rng.normal(0.0002, 0.01))]],
    }).encode()
    head = (f"POST /worlds/{WORLD}/metrics HTTP/1.1\r\nHost: bench\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response with a Content-Length; its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def client(port: int, requests: list[bytes], stop: float, rate: float | None,
                 latencies: list[float], errors: list[int]) -> None:
    """Send ``requests`` one after another on one connection until ``stop`` (a
    ``perf_counter`` time), at most ``rate`` per second; record each answer's latency."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    due = time.perf_counter()
    for req in requests:
        if rate is not None:
            due += 1.0 / rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
        t0 = time.perf_counter()
        if t0 >= stop:
            break
        writer.write(req)
        status = await read_response(reader)
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            errors.append(status)
    writer.close()


async def write_load(server: Server, clients: int, seconds: float, rate: float | None,
                     tag: str) -> dict[str, float]:
    """``clients`` writers for ``seconds`` (each at most ``rate``/s): updates/s, p50, p99 ms."""
    rng = np.random.default_rng(0)
    per_client = int(seconds * (rate or 2_000)) + 10
    # a strategy's Sharpe over its run moves a little each bar: a random walk around its own
    # level, so the ranks (and the world's decisions) change now and then, not every bar
    levels = rng.normal(0.5, 0.5, clients)
    walks = levels[:, None] + np.cumsum(rng.normal(0, 0.01, (clients, per_client)), axis=1)
    reqs = [[update_request(server.developer, f"{tag}{c:03d}", s, float(walks[c, s - 1]), rng)
             for s in range(1, per_client + 1)] for c in range(clients)]
    seq0 = world_seq(server)
    latencies: list[float] = []
    errors: list[int] = []
    t0, cpu0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server.proc.pid)
    await asyncio.gather(*(client(server.port, r, t0 + seconds, rate, latencies, errors)
                           for r in reqs))
    elapsed = time.perf_counter() - t0
    client_cpu = (time.process_time() - cpu0) / elapsed
    server_cpu = (cpu_seconds(server.proc.pid) - server0) / elapsed
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, statuses {sorted(set(errors))}")
    events = world_seq(server) - seq0
    ms = np.asarray(latencies) * 1e3
    return {"updates_per_s": len(ms) / elapsed, "events_per_s": events / elapsed,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "requests": len(ms),
            "server_cores": server_cpu, "client_cores": client_cpu}


def world_seq(server: Server) -> int:
    """The seq of the world's latest activation event."""
    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/worlds/{WORLD}/activation",
                                 headers={"Authorization": f"Bearer {server.developer}"})
    return int(json.loads(urllib.request.urlopen(req, timeout=10).read())["seq"])


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def hold_streams(port: int, tokens: list[str], n: int) -> None:
    """Open ``n`` ``GET /events`` streams (tokens in turn), say ``ready`` on stdout, then
    read and drop what they send until stdin closes (``--hold-streams``: a process of its
    own, as such clients are other machines)."""
    readers = []
    for i in range(n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /worlds/{WORLD}/events?heartbeat=15 HTTP/1.1\r\nHost: bench\r\n"
                     f"Authorization: Bearer {tokens[i % len(tokens)]}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if head[9:12] != b"200":
            raise RuntimeError(f"stream {i} refused: {head[:200]!r}")
        readers.append(reader)

    async def drain(reader: asyncio.StreamReader) -> None:
        while await reader.read(65536):
            pass

    tasks = [asyncio.create_task(drain(r)) for r in readers]
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for t in tasks:
        t.cancel()


def idle_streams(server: Server, n: int) -> subprocess.Popen[str]:
    """A process holding ``n`` open event streams (see :func:`hold_streams`)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--hold-streams", str(server.port), str(n),
         ",".join(server.viewers)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError("the stream holder did not start")
    return proc


async def run_store(url: str, args: argparse.Namespace) -> list[dict[str, object]]:
    """Both phases on one store kind; one row each."""
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    rows: list[dict[str, object]] = []
    server = start_server(url, n_viewers=max(1, args.streams // 100))
    try:
        await write_load(server, args.clients, 1.0, None, "warm")  # first use loads the engine
        load = await write_load(server, args.clients, args.seconds, None, "load")
        rows.append({"case": f"{args.clients} clients, {kind}", **load})
        quiet = await write_load(server, 10, args.seconds, 20.0, "quiet")
        holder = idle_streams(server, args.streams)
        await asyncio.sleep(1.0)
        try:
            busy = await write_load(server, 10, args.seconds, 20.0, "busy")
        finally:
            holder.communicate("")  # closing stdin ends it
        rows.append({"case": f"writes, no streams, {kind}", **quiet})
        rows.append({"case": f"writes, {args.streams} idle streams, {kind}", **busy,
                     "p99_ratio": busy["p99_ms"] / quiet["p99_ms"]})
    finally:
        server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--streams", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "world_load.json")
    parser.add_argument("--hold-streams", nargs=3, metavar=("PORT", "N", "TOKENS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_streams:
        port, n, tokens = args.hold_streams
        asyncio.run(hold_streams(int(port), tokens.split(","), int(n)))
        return
    args.seconds = args.seconds or (3.0 if args.quick else 10.0)
    args.streams = args.streams or (200 if args.quick else 1_000)
    rows: list[dict[str, object]] = []
    uvloop.install()  # the load generator shares the machine: give it the fast loop too
    with tempfile.TemporaryDirectory() as d:
        if args.store in ("sqlite", "both"):
            rows += asyncio.run(run_store(str(Path(d) / "w.db"), args))
        if args.store in ("postgresql", "both"):
            schema = f"load_{uuid.uuid4().hex[:8]}"
            try:
                rows += asyncio.run(run_store(f"{PG_URL}?schema={schema}", args))
            finally:
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"{'case':<36}{'updates/s':>11}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'p99 x':>7}{'server':>8}{'client':>8}")
    print("-" * 98)
    for r in rows:
        ratio = f"{r['p99_ratio']:.2f}" if "p99_ratio" in r else ""
        print(f"{r['case']:<36}{r['updates_per_s']:>11,.0f}{r['events_per_s']:>10,.1f}"
              f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{ratio:>7}{r['server_cores']:>8.2f}"
              f"{r['client_cores']:>8.2f}")
    print("events/s: activation events the writes caused (each goes to every stream); "
          "server, client: CPU cores each used")
    print("targets: >= 1,000 updates/s with p99 <= 250 ms (50 clients); idle streams raise a "
          "write's p99 at most 2x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "cpus": os.cpu_count(),
                                    "seconds": args.seconds, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
