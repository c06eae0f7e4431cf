"""The world's book: orders per second through the risk checks and through the broker
interface, and bar -> order latency of QMTL's own part at 1,000 bars/s.

    python bench/book.py            # full runs
    python bench/book.py --quick    # shorter runs

- risk: one order request checked against every limit (order and position notional, gross
  and net exposure, collar, rate) on an account of 20 symbols, many times: checks/s.
- adapter: market orders through :class:`connectors.brokers.ccxt_broker.CcxtBroker` against
  a local server answering Binance's spot API (``bench/binance_server.py``), against the
  same orders sent by calling ccxt's ``create_order`` directly in the same run (the peer):
  orders/s and the adapter's overhead as a ratio. Both pay the same HTTP round trip, so the
  ratio is what the adapter adds (markets, precision, the error mapping).
- bar -> order: bars arrive on a 1,000 bars/s schedule; on each, two strategies' targets
  (long and short one symbol, moving every bar so every bar makes an order) are stored,
  netted, sized, risk-checked and the order stored and handed to the broker (a paper broker
  in memory: the broker's own time is excluded). Timed from the bar's arrival to the return
  of ``submit``; p50 and p99 over the run after the first fifth. Two ledgers: in memory
  (the core alone) and the durable one (SQLite, every event committed before the order
  leaves, as the book runs).

Prints a table and writes ``bench/results/book.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.binance_server import Exchange, serve, urls  # noqa: E402
from bench.common import RESULTS, machine, print_table, write_results  # noqa: E402
from connectors.brokers.ccxt_broker import SPOT_OPTIONS, CcxtBroker  # noqa: E402
from connectors.brokers.paper import PaperBroker  # noqa: E402
from qmtl.book.decide import BookPolicy, decide  # noqa: E402
from qmtl.book.ledger import Ledger, request_of  # noqa: E402
from qmtl.book.model import OrderRequest  # noqa: E402
from qmtl.book.risk import AccountView, RateLimit, RiskLimits, check  # noqa: E402
from qmtl.book_run.service import BookConfig, BookService  # noqa: E402
from qmtl.book_run.store import open_book_store  # noqa: E402

LIMITS = RiskLimits(
    max_order_notional=1e7,
    max_position_notional=1e8,
    max_gross=1e9,
    max_net=1e9,
    max_orders=10**9,
    window_s=1.0,
    collar=0.5,
)


def bench_risk(n: int) -> float:
    """Risk checks per second."""
    syms = [f"S{i:02d}" for i in range(20)]
    view = AccountView({s: 10.0 for s in syms}, {s: 1.0 for s in syms}, dict.fromkeys(syms, 100.0))
    reqs = [OrderRequest(f"c{i}", syms[i % 20], 1.0 + i % 5, 100.0) for i in range(n)]
    rate = RateLimit(LIMITS.max_orders, LIMITS.window_s)
    t0 = time.perf_counter()
    for k, r in enumerate(reqs):
        if check(r, view, LIMITS, "ACTIVE") is None:
            rate.take(k * 1e-6)
    return n / (time.perf_counter() - t0)


def bench_adapter(n: int) -> dict[str, float]:
    """Orders/s through the adapter and through ccxt directly, on the same local exchange."""
    import ccxt

    ex = Exchange({"USDT": 1e12})
    srv, base = serve(ex)
    cfg = {"urls": urls(base), "enableRateLimit": False}
    broker = CcxtBroker("binance", ["BTC/USDT"], "k", "s", config=cfg)
    raw = ccxt.binance({"apiKey": "k", "secret": "s", **cfg, "options": dict(SPOT_OPTIONS)})
    broker.instruments(["BTC/USDT"])
    raw.load_markets()
    out: dict[str, float] = {}
    best = {"adapter": 0.0, "ccxt": 0.0}
    for rnd in range(3):  # interleaved rounds: load from other processes hits both alike
        t0 = time.perf_counter()
        for i in range(n):
            broker.submit(OrderRequest(f"a{rnd}-{i}", "BTC/USDT", 0.1, 100.0))
        best["adapter"] = max(best["adapter"], n / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        for i in range(n):
            raw.create_order(
                "BTC/USDT", "market", "buy", 0.1, None, {"clientOrderId": f"r{rnd}-{i}"}
            )
        best["ccxt"] = max(best["ccxt"], n / (time.perf_counter() - t0))
    srv.shutdown()
    out.update(best)
    out["ratio"] = best["adapter"] / best["ccxt"]
    return out


class _Timed(PaperBroker):
    """The paper broker in memory, noting when each order was handed to it."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.handed: float | None = None

    def submit(self, req: OrderRequest) -> Any:
        """Hand the order over (the broker's own time, excluded, starts here)."""
        self.handed = time.perf_counter()
        return super().submit(req)


def _bars(n: int, rate: float, on_bar: Any, broker: _Timed) -> np.ndarray:
    """Bars on a schedule of ``rate`` a second: for each, ms from its due time (or from when
    it was taken up, if later: a bar is never timed from before it was due) to the order
    being handed to the broker."""
    lat = np.full(n, np.nan)
    start = time.perf_counter()
    for k in range(n):
        due = start + k / rate
        while time.perf_counter() < due:
            pass
        broker.handed = None
        on_bar(k)
        if broker.handed is not None:
            lat[k] = broker.handed - due
    lat = lat[n // 5 :]
    return lat[np.isfinite(lat)] * 1e3


def bench_core(n: int, rate: float) -> np.ndarray:
    """Bar -> order, the ledger in memory: ms per bar."""
    led = Ledger("w")
    led.apply({"kind": "adopt", "cash": 1e6, "positions": {}})
    led.apply({"kind": "weights", "weights": {"long": 0.5, "short": 0.5}})
    broker = _Timed(cash=1e6)
    policy, rl = BookPolicy(limits=LIMITS), RateLimit(LIMITS.max_orders, LIMITS.window_s)

    def on_bar(k: int) -> None:
        price = 100.0 + (k % 7)
        for sid, w in (("long", 0.5 + 0.1 * (k % 3)), ("short", -0.3)):
            led.apply(
                {
                    "kind": "target",
                    "strategy": sid,
                    "seq": k,
                    "ts": k,
                    "weights": {"BTC": w},
                    "prices": {"BTC": price},
                }
            )
        for e in decide(led, {}, policy, rl, k / rate, k):
            led.apply(e)
            if e["kind"] == "order":
                broker.submit(request_of(e))
                for status in ("submitted", "cancelled"):  # free the symbol for the next bar
                    led.apply({"kind": "status", "client_id": e["client_id"], "status": status})

    return _bars(n, rate, on_bar, broker)


def bench_durable(n: int, rate: float) -> np.ndarray:
    """Bar -> order through the book service and its SQLite ledger: ms per bar."""
    with tempfile.TemporaryDirectory() as d:
        store = open_book_store(str(Path(d) / "book.db"))
        broker = _Timed(cash=1e6)
        svc = BookService(
            store, broker, BookConfig("w", symbols=("BTC",), policy=BookPolicy(limits=LIMITS))
        )
        svc.start()
        svc.set_weights({"long": 0.5, "short": 0.5})

        def on_bar(k: int) -> None:
            price = 100.0 + (k % 7)
            inputs = [
                svc.target_event("long", k + 1, {"BTC": 0.5 + 0.1 * (k % 3)}, {"BTC": price}, k),
                svc.target_event("short", k + 1, {"BTC": -0.3}, {"BTC": price}, k),
            ]
            for e in svc.step(now=k / rate, ts=k, inputs=[e for e in inputs if e]):
                broker.cancel(e["client_id"], "BTC")
            svc.sync()

        lat = _bars(n, rate, on_bar, broker)
        store.close()
    return lat


def main() -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_risk, n_orders, n_bars = (20_000, 100, 1_000) if args.quick else (200_000, 400, 5_000)
    risk = bench_risk(n_risk)
    adapter = bench_adapter(n_orders)
    core = bench_core(n_bars, 1000.0)
    durable = bench_durable(n_bars, 1000.0)
    t0 = time.perf_counter()
    bench_durable(n_bars // 5, 1e9)  # unpaced: the time one bar costs, queueing left out
    per_bar = (time.perf_counter() - t0) / (n_bars // 5) * 1e3
    rows = [
        ["risk checks (all limits, 20 symbols)", f"{risk:,.0f} /s", ""],
        [
            "orders through the ccxt adapter (local Binance API)",
            f"{adapter['adapter']:,.0f} /s",
            f"{adapter['ratio']:.2f}x ccxt direct ({adapter['ccxt']:,.0f} /s)",
        ],
        [
            "bar -> order, ledger in memory, 1,000 bars/s",
            f"p50 {np.percentile(core, 50):.3f} ms",
            f"p99 {np.percentile(core, 99):.3f} ms",
        ],
        [
            "bar -> order, durable ledger (SQLite), 1,000 bars/s",
            f"p50 {np.percentile(durable, 50):.3f} ms",
            f"p99 {np.percentile(durable, 99):.3f} ms",
        ],
        ["durable ledger, one bar's work unpaced (mean)", f"{per_bar:.3f} ms", ""],
    ]
    print_table("the world's book", ["what", "speed", "vs"], rows, align="lrr")
    write_results(
        RESULTS / "book.json",
        {
            "machine": machine(),
            "load_average": os.getloadavg(),
            "durable_ms_per_bar_unpaced": per_bar,
            "quick": args.quick,
            "risk_checks_per_s": risk,
            "adapter": adapter,
            "bar_to_order_ms": {
                "memory": {
                    "p50": float(np.percentile(core, 50)),
                    "p99": float(np.percentile(core, 99)),
                    "bars": len(core),
                },
                "durable": {
                    "p50": float(np.percentile(durable, 50)),
                    "p99": float(np.percentile(durable, 99)),
                    "bars": len(durable),
                },
            },
        },
    )


if __name__ == "__main__":
    main()
