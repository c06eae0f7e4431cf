"""What the WorldService's observability costs: HTTP ingest (batches of 100 updates, SQLite)
and a cheap read (``GET /healthz``) with the metrics middleware and counters, against the same
app without them; and what a scrape of ``/metrics`` costs after that traffic.

    python bench/observability.py            # 200 batches, 2,000 reads
    python bench/observability.py --quick    # 40 batches, 400 reads

Prints a table (rates and the ratio with/without) and writes
``bench/results/observability.json``. Timings are in process (TestClient), best of 3
interleaved runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from world_api.service.app import create_app  # noqa: E402
from world_api.service.observability import Observe  # noqa: E402


def _app(instrumented: bool, folder: Path):
    app = create_app(str(folder / f"w-{instrumented}.db"), insecure_dev=True)
    if not instrumented:  # the same app without the middleware, its counters made no-ops
        app.user_middleware = [m for m in app.user_middleware if m.cls is not Observe]
        m = app.state.service.metrics
        m.ingested = m.rejected = m.written = lambda *a, **k: None  # type: ignore[method-assign]
    return app


def _batches(n: int, size: int = 100, strategies: int = 100) -> list[list[dict]]:
    rng = np.random.default_rng(1)
    seqs = [0] * strategies
    out = []
    for b in range(n):
        batch = []
        for i in range(size):
            sid = (b * size + i) % strategies
            seqs[sid] += 1
            s = seqs[sid]
            batch.append({"world": "w", "strategy_id": f"s{sid}", "run_id": "r", "seq": s,
                          "mode": "backtest", "as_of": s, "n_bars": 200 + s,
                          "metrics": {"sharpe": float(rng.normal(1, 0.3))},
                          "returns": [[s * 10 + j, float(rng.normal(0, 0.01))]
                                      for j in range(5)]})
        out.append(batch)
    return out


def measure(instrumented: bool, batches: list[list[dict]], reads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp, TestClient(_app(instrumented, Path(tmp))) as c:
        assert c.post("/worlds", json={"id": "w"}).status_code == 201
        t0 = time.perf_counter()
        for b in batches:
            assert c.post("/worlds/w/metrics", json=b).status_code == 200
        ingest = len(batches) * len(batches[0]) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(reads):
            c.get("/healthz")
        read = reads / (time.perf_counter() - t0)
        scrape_ms = size = 0.0
        if instrumented:
            t0 = time.perf_counter()
            for _ in range(20):
                size = len(c.get("/metrics").content)
            scrape_ms = (time.perf_counter() - t0) / 20 * 1000
    return {"updates_per_s": ingest, "reads_per_s": read, "scrape_ms": scrape_ms,
            "scrape_bytes": size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n, reads = (40, 400) if args.quick else (200, 2000)
    runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
    for _ in range(3):  # interleaved: a busy machine slows both alike
        for instrumented in (False, True):
            runs["with" if instrumented else "without"].append(
                measure(instrumented, _batches(n), reads))
    rows = {name: {k: max(r[k] for r in rs) if k.endswith("_s") else min(r[k] for r in rs)
                   for k in rs[0]} for name, rs in runs.items()}
    w, wo = rows["with"], rows["without"]
    print(f"{'':24}{'without':>12}{'with':>12}{'ratio':>8}")
    for key in ("updates_per_s", "reads_per_s"):
        print(f"{key:24}{wo[key]:12,.0f}{w[key]:12,.0f}{w[key] / wo[key]:8.2f}")
    print(f"GET /metrics: {w['scrape_ms']:.2f} ms, {w['scrape_bytes']:,.0f} bytes")
    out = ROOT / "bench" / "results" / "observability.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"batches": n, "reads": reads, "rows": rows,
                               "python": platform.python_version()}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
