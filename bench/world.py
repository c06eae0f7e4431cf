"""World throughput: metric updates per second, in process and over HTTP, SQLite and PostgreSQL;
and what a read of the world's own return costs.

    python bench/world.py            # 100 and 1,000 strategies; 100k updates in process
    python bench/world.py --quick    # small sizes

Prints a table (updates/s and the per-update cost growth from 100 to 1,000 strategies), the
milliseconds of a world-return read (metrics of the realized series, the pro forma series of
10 active strategies with full rings) and writes ``bench/results/world.json``. PostgreSQL rows
need the server at 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmtl.core.contracts import MetricsUpdate  # noqa: E402
from world_api.domain.evaluator import WorldEngine  # noqa: E402
from world_api.domain.policy import parse_policy  # noqa: E402
from world_api.domain.strategy_state import RING  # noqa: E402
from world_api.domain.world_returns import ReturnSeries  # noqa: E402
from world_api.service.app import create_app  # noqa: E402

POLICY = """
min_bars: 100
gates: {sharpe: ">= 0.2", max_drawdown: "<= 0.5"}
score: {sharpe: 0.7, linearity: 0.3}
top_k: 10
max_correlation: 0.8
hysteresis: {margin: 0.1, min_dwell_bars: 50}
allocation: {method: inverse_vol, max_weight: 0.3, min_change: 0.01}
"""
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def make_updates(n_strategies: int, n_updates: int, seed: int = 0) -> list[MetricsUpdate]:
    rng = np.random.default_rng(seed)
    out = []
    seqs = np.zeros(n_strategies, dtype=int)
    for k in range(n_updates):
        i = int(rng.integers(n_strategies))
        seqs[i] += 1
        out.append(MetricsUpdate(
            world="bench", strategy_id=f"s{i:04d}", run_id="r", seq=int(seqs[i]),
            mode="paper", as_of=k, n_bars=100 + 10 * int(seqs[i]),
            metrics={"sharpe": float(rng.normal(1, 0.5)), "max_drawdown": float(rng.random() / 2),
                     "linearity": float(rng.random())},
            returns=[(10 * int(seqs[i]) + j, r)
                     for j, r in enumerate(rng.normal(0.0005, 0.01, 10).tolist())],
        ))
    return out


def in_process(n_strategies: int, n_updates: int) -> float:
    updates = make_updates(n_strategies, n_updates)
    eng = WorldEngine(parse_policy(POLICY))
    t0 = time.perf_counter()
    for u in updates:
        eng.ingest(u)
    return n_updates / (time.perf_counter() - t0)


def over_http(store_url: str, n_strategies: int, n_updates: int, batch: int = 100) -> float:
    updates = make_updates(n_strategies, n_updates, seed=1)
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        c.post("/worlds", json={"id": "bench"})
        c.put("/worlds/bench/policy", content=POLICY)
        bodies = [
            "[" + ",".join(u.model_dump_json() for u in updates[i : i + batch]) + "]"
            for i in range(0, len(updates), batch)
        ]
        t0 = time.perf_counter()
        for body in bodies:
            r = c.post("/worlds/bench/metrics", content=body,
                       headers={"content-type": "application/json"})
            assert r.status_code == 200, r.text
        rate = n_updates / (time.perf_counter() - t0)
    app.state.service.store.close()
    return rate


def best_ms(fn: object, repeat: int = 20) -> float:
    """The fastest of ``repeat`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def world_return_reads(n_points: int) -> list[dict]:
    """ms of a read of the realized metrics over ``n_points`` points (after one new point,
    so no cache helps), and of the pro forma series and metrics of 10 active strategies."""
    rng = np.random.default_rng(2)
    rs = ReturnSeries()
    rs.add(list(zip(range(n_points), rng.normal(0, 0.01, n_points).tolist(), strict=True)), 1.0)
    step = iter(range(n_points, n_points + 1000))

    def realized() -> None:
        rs.add([(next(step), 0.001)], 1.0)
        rs.metrics()

    eng = WorldEngine(parse_policy("top_k: 10"))
    for i in range(10):
        r = rng.normal(0, 0.01, RING)
        eng.ingest(MetricsUpdate(world="b", strategy_id=f"s{i}", run_id="r", seq=1,
                                 mode="paper", as_of=RING, n_bars=RING, metrics={"sharpe": 1.0},
                                 returns=list(zip(range(1, RING + 1), r.tolist(), strict=True))))
    assert len(eng.weights()) == 10

    def pro_forma() -> None:
        eng._pro_forma.key = ()  # as after a weight change
        eng.pro_forma()

    return [{"case": f"realized metrics, {n_points:,} points", "ms": best_ms(realized)},
            {"case": f"pro forma, 10 active x {RING:,} returns", "ms": best_ms(pro_forma)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "world.json")
    args = parser.parse_args()
    n_proc = 5_000 if args.quick else 100_000
    n_http = 1_000 if args.quick else 10_000
    rows = []
    for n in (100, 1_000):
        rows.append({"case": f"in process, {n} strategies", "strategies": n,
                     "updates_per_s": in_process(n, n_proc)})
    for n in (100, 1_000):
        with tempfile.TemporaryDirectory() as d:
            rows.append({"case": f"HTTP x100, SQLite, {n} strategies", "strategies": n,
                         "updates_per_s": over_http(str(Path(d) / "w.db"), n, n_http)})
        try:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            rate = over_http(f"{PG_URL}?schema={schema}", n, n_http)
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            rows.append({"case": f"HTTP x100, PostgreSQL, {n} strategies", "strategies": n,
                         "updates_per_s": rate})
        except Exception as exc:  # no server: say so, keep the other rows
            print(f"PostgreSQL skipped: {exc}")
    reads = [row for n in ((10_000,) if args.quick else (10_000, 100_000))
             for row in world_return_reads(n)]
    growth = rows[0]["updates_per_s"] / rows[1]["updates_per_s"]
    print(f"{'case':<40}{'updates/s':>12}")
    print("-" * 52)
    for r in rows:
        print(f"{r['case']:<40}{r['updates_per_s']:>12,.0f}")
    print(f"\nper-update cost growth, 100 -> 1,000 strategies (in process): {growth:.2f}x "
          f"(linear would be 10x)")
    print(f"\n{'world-return read':<40}{'ms':>12}")
    print("-" * 52)
    for r in reads:
        print(f"{r['case']:<40}{r['ms']:>12.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": platform.platform(), "rows": rows,
                                    "growth_100_to_1000": growth, "reads": reads},
                                   indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
