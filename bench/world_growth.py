"""A world's cost per new strategy as it grows, and a single update's wait while batches
arrive, over HTTP against the real app (uvicorn in this process) on SQLite or PostgreSQL.

    python bench/world_growth.py                    # 3 rounds of 5,000 new strategies, SQLite
    python bench/world_growth.py --store postgresql --rounds 2 --per-round 2000
    python bench/world_growth.py --quick            # 3 rounds of 1,000

* **growth**: each round posts ``--per-round`` new strategies (one update each, in requests
  of ``--max-new-strategies``, the service's bound) into the same world; the time of each
  round and its ratio to the first. Flat ratios: the cost per new strategy does not grow
  with the world (before the fix a new strategy re-sorted every id: the second round of
  5,000 took 3.6x the first).
* **engine**: the same rounds straight into a ``WorldEngine`` (no HTTP, no store).
* **single**: while 4 clients post batches of ``--max-updates`` updates, one client posts
  single updates: their p50 and max latency, and how many batches were told 429.

Prints a table and writes ``bench/results/world_growth.json``. Speed numbers live here, not
in the tests (which assert the structure that bounds them).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psycopg
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS, machine, print_table, write_results
from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.service.app import create_app

POLICY = "top_k: 10\nmax_correlation: 0.8\nallocation: {method: inverse_vol}"
PG = "postgresql://postgres@127.0.0.1:5432/test"
RNG = np.random.default_rng(11)


def update(sid: str, seq: int = 1) -> dict:
    return {
        "world": "w",
        "strategy_id": sid,
        "run_id": "r",
        "seq": seq,
        "mode": "backtest",
        "as_of": seq * 100,
        "n_bars": 100 * seq,
        "metrics": {"sharpe": float(RNG.normal())},
        "returns": [[seq * 100 + i, float(r)] for i, r in enumerate(RNG.normal(0, 0.01, 20))],
    }


@contextlib.contextmanager
def served(store: str) -> Iterator[str]:
    url = (
        str(Path(tempfile.mkdtemp()) / "world.db")
        if store == "sqlite"
        else (f"{PG}?schema=bench_{uuid.uuid4().hex[:10]}")
    )
    if store != "sqlite":
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{url.rsplit("=", 1)[1]}"')
    app = create_app(url, insecure_dev=True)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        app.state.service.store.close()
        if store != "sqlite":
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{url.rsplit("=", 1)[1]}" CASCADE')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def growth(url: str, rounds: int, per_round: int, chunk: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=600) as http:
        http.post("/worlds", json={"id": "w"})
        http.put("/worlds/w/policy", content=POLICY)
        for k in range(rounds):
            bodies = [
                [update(f"r{k}-{i + j:06d}") for j in range(chunk)]
                for i in range(0, per_round, chunk)
            ]
            started = time.perf_counter()
            for body in bodies:
                r = http.post("/worlds/w/metrics", json=body)
                r.raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def engine_growth(rounds: int, per_round: int) -> list[float]:
    eng = WorldEngine(parse_policy(POLICY))
    times = []
    for k in range(rounds):
        ups = [MetricsUpdate.model_validate(update(f"r{k}-{i:06d}")) for i in range(per_round)]
        started = time.perf_counter()
        for u in ups:
            eng.ingest(u)
        times.append(time.perf_counter() - started)
    return times


def single_latency(url: str, batches: int, size: int, new: int) -> dict[str, float]:
    refused = [0]
    stop = threading.Event()

    def flood(t: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as http:
            for b in range(batches):
                body = [update(f"f{t}-{b}-{i % new:04d}", 1 + i // new) for i in range(size)]
                while http.post("/worlds/w/metrics", json=body).status_code == 429:
                    refused[0] += 1
                    time.sleep(0.05)
        stop.set()

    threads = [threading.Thread(target=flood, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    lat = []
    with httpx.Client(base_url=url, timeout=600) as http:
        seq = 0
        while any(th.is_alive() for th in threads):
            seq += 1
            started = time.perf_counter()
            http.post("/worlds/w/metrics", json=[update("live", seq)]).raise_for_status()
            lat.append(time.perf_counter() - started)
    for th in threads:
        th.join()
    return {
        "singles": len(lat),
        "p50_s": float(np.median(lat)),
        "max_s": float(max(lat)),
        "batches_refused_429": refused[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=5_000)
    ap.add_argument("--max-new-strategies", type=int, default=100)
    ap.add_argument("--max-updates", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    # the rounds go past the default 10,000 strategies per world (the other bounds stay)
    os.environ.setdefault("QMTL_WORLD_MAX_STRATEGIES", "1000000")
    if args.quick:
        args.per_round = 1_000
    with served(args.store) as url:
        http_times = growth(url, args.rounds, args.per_round, args.max_new_strategies)
        single = single_latency(url, 3, args.max_updates, args.max_new_strategies)
    eng_times = engine_growth(args.rounds, args.per_round)
    rows = [
        [k + 1, f"{h:.2f}", f"{h / http_times[0]:.2f}", f"{e:.2f}", f"{e / eng_times[0]:.2f}"]
        for k, (h, e) in enumerate(zip(http_times, eng_times, strict=True))
    ]
    print_table(
        f"{args.per_round} new strategies per round ({args.store})",
        ["round", "http s", "ratio", "engine s", "ratio"],
        rows,
    )
    print(
        f"single updates while 4 clients post batches of {args.max_updates}: "
        f"{single['singles']} posted, p50 {single['p50_s'] * 1000:.0f} ms, "
        f"max {single['max_s'] * 1000:.0f} ms, batches told 429: "
        f"{single['batches_refused_429']}"
    )
    path = write_results(
        RESULTS / "world_growth.json",
        {
            "machine": machine(),
            "store": args.store,
            "per_round": args.per_round,
            "http_s": http_times,
            "http_ratio": [t / http_times[0] for t in http_times],
            "engine_s": eng_times,
            "engine_ratio": [t / eng_times[0] for t in eng_times],
            "single": single,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
