"""The world dashboard's first paint, measured by the browser (Navigation and Paint Timing).

    python bench/dashboard.py            # worlds of 10, 100 and 1,000 strategies, 5 loads each
    python bench/dashboard.py --quick    # 10 and 1,000 strategies, 2 loads each

Runs a real ``qmtl world serve --insecure-dev`` (SQLite store in a temporary folder), fills
worlds with strategies through the HTTP client, and opens ``/ui/worlds/{id}`` in headless
Chromium (Debian's ``chromium`` and ``chromium-driver``; needs ``selenium``), first with an
empty cache, then again with a warm one. Per load it reads, in ms since navigation start:
the HTML's ``responseEnd``, ``first-contentful-paint``, the dashboard's own marks
``qmtl:table`` (the activation table is drawn) and ``qmtl:charts`` (every chart is drawn),
and ``loadEventEnd``. Prints a table (medians; the target is the table within 1,000 ms) and
writes ``bench/results/dashboard.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS,
    free_ports,
    machine,
    print_table,
    wait_port,
    write_results,
)
from qmtl.core.contracts import MetricsUpdate, timed_returns  # noqa: E402
from world_api.client import WorldServiceClient  # noqa: E402

POLICY = 'gates: {sharpe: ">= 0.5"}\ntop_k: 10\nallocation: {method: inverse_vol}\n'
TARGET_MS = 1000.0
DAY = 86_400 * 10**9
TIMINGS = """
const nav = performance.getEntriesByType('navigation')[0];
const at = (name) => {
  const e = performance.getEntriesByName(name)[0]; return e ? e.startTime : null; };
return {html: nav.responseEnd, fcp: at('first-contentful-paint'), table: at('qmtl:table'),
        charts: at('qmtl:charts'), load: nav.loadEventEnd};
"""


def fill(url: str, world: str, n: int, bars: int = 250, seed: int = 0) -> None:
    """A world of ``n`` strategies, each with ``bars`` streamed returns."""
    rng = np.random.default_rng(seed)
    with WorldServiceClient(url) as client:
        client.create_world(world)
        client.put_policy(world, POLICY)
        updates = [MetricsUpdate(
            world=world, strategy_id=f"s{i:04d}", run_id="r", seq=1, mode="paper", as_of=bars,
            n_bars=bars, metrics={"sharpe": float(rng.normal(1, 0.5)), "max_drawdown": 0.1},
            returns=timed_returns(DAY * np.arange(1, bars + 1), rng.normal(0.0005, 0.01, bars)))
            for i in range(n)]
        for k in range(0, n, 100):  # a request body stays under the service's 1 MiB
            client.post_metrics(world, updates[k:k + 100])


def browser(profile: Path) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile (an empty cache)."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--no-first-run", "--disable-background-networking",
                "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
                f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))


def load(driver: webdriver.Chrome, url: str) -> dict[str, float]:
    """Open ``url`` and wait for the dashboard's charts; its timings in ms."""
    driver.get(url)
    deadline = time.time() + 60
    while time.time() < deadline:
        t = driver.execute_script(TIMINGS)
        if t["charts"] is not None and t["load"]:
            return t
        time.sleep(0.05)
    raise RuntimeError(f"{url}: the charts were not drawn within 60 s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    sizes = [10, 1000] if args.quick else [10, 100, 1000]
    loads = 2 if args.quick else 5
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    rows, doc = [], {"machine": machine(), "target_ms": TARGET_MS, "loads": loads, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [sys.executable, "-c", "from qmtl.cli import main; main()", "world", "serve",
             "--insecure-dev", "--port", str(port), "--store", str(Path(tmp) / "world.db")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)
            for n in sizes:
                fill(url, f"w{n}", n)
                driver = browser(Path(tmp) / f"profile{n}")
                try:
                    page = f"{url}/ui/worlds/w{n}"
                    cold = load(driver, page)
                    warm = [load(driver, page) for _ in range(loads)]
                    driver.get("about:blank")
                finally:
                    driver.quit()
                med = {k: statistics.median(t[k] for t in warm) for k in cold}
                doc["runs"].append({"strategies": n, "cold": cold, "warm": warm,
                                    "warm_median": med})
                for label, t in (("cold", cold), ("warm (median)", med)):
                    rows.append([f"{n:,}", label, *(f"{t[k]:.0f}" for k in
                                 ("html", "fcp", "table", "charts", "load")),
                                 "yes" if t["table"] <= TARGET_MS else "NO"])
        finally:
            server.terminate()
            server.wait(10)
    print_table("Dashboard first paint, ms since navigation start (headless Chromium, "
                "local server)",
                ["strategies", "cache", "HTML", "first paint", "table", "charts", "load",
                 f"table <= {TARGET_MS:.0f}"], rows, align="ll" + "r" * 6)
    print(f"wrote {write_results(RESULTS / 'dashboard.json', doc).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
