"""Trades into bars: trades aggregated per second on one core, and the latency of QMTL's own
part from the trade that closes a bar to the bar out of the flow's assembler.

    python bench/feeds.py            # 1M trades
    python bench/feeds.py --quick    # 50k trades, 300 bars to orders

One symbol, ~10 trades a second of event time, 1m bars, a 2 s allowed lateness, arrival
shuffled within it. Measured in the same run, one process, one core:

- batched: Arrow IPC messages of 10,000 trades (what a bulk producer sends), decoded and
  aggregated by the live source's assembler (``FeedAssembler.decode``);
- one at a time: one JSON message per trade (``FeedAssembler.decode`` per message), and the
  operator alone (``TradeBars.add`` of one trade, no decoding);
- peers on the same trades, all at once (no watermark, no arrival order): the catalog's
  ``trades_to_bars`` and pandas' ``resample(...).ohlc()``; every path's bars are checked
  equal to pandas'.

Latency: for each JSON trade message that closes a bar, the time of its decode and
aggregation (trade in -> closed bar out), p50 and p99. Then trade -> bar close -> order,
QMTL's own part: a real live run in process (``run_live``, ``--feed trades --paper``, the
world served by ``qmtl world serve``) reads trades from an in-process feed that releases
them at a fixed rate, one delivery per trade, as the exchange feed's thread hands them over
(no Kafka, no ccxt, no websocket: the feed is put in ``open_feed``'s place); a strategy
whose target moves on every bar makes an order a bar; the latency is from the poll that
hands the live source the first trade after a bar's end to the order (with its paper fill)
reported by the run, p50 and p99, the first fifth left out. The prepared inputs are moved out of
the garbage collector's sight (``gc.freeze``) before the one-at-a-time loops: a live run
does not hold a million messages, and scanning them would be the benchmark's cost, not
QMTL's. Prints a table and writes
``bench/results/feeds.json``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, machine, print_table, write_results  # noqa: E402
from bench.live import activate, world  # noqa: E402
from connectors.live.assembler import FeedAssembler  # noqa: E402
from connectors.live.feeds import RawMessage  # noqa: E402
from connectors.live.trade_codec import encode_trade, encode_trades_arrow  # noqa: E402
from dataflows.trade_bars import TradeBars, trades_to_bars  # noqa: E402
from qmtl import Strategy  # noqa: E402
from qmtl.live import LiveOptions, handoff, run_live  # noqa: E402
from qmtl.live import runner as live_runner  # noqa: E402

S = 10**9
COLS = ("ts", "open", "high", "low", "close", "volume")


def make_trades(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = 1_704_067_200 * S + np.cumsum(rng.integers(1, 200_000_000, n))  # ~10 a second
    price = np.round(42_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, n))), 2)
    size = np.round(rng.uniform(0.001, 1, n), 4)
    ids = np.array([str(i) for i in range(n)], dtype=object)
    # arrival within the lateness (2 s): sorted by time plus a delay of up to 2 s
    order = np.argsort(ts + rng.integers(0, 2 * S, n), kind="stable")
    return {k: v[order] for k, v in {"ts": ts, "price": price, "size": size, "id": ids}.items()}


def pandas_bars(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    df = pd.DataFrame({"ts": t["ts"], "id": t["id"], "price": t["price"], "size": t["size"]})
    df = df.sort_values(["ts", "id", "price", "size"], kind="stable")
    df.index = pd.to_datetime(df.ts, unit="ns")
    ohlc = df.price.resample("60s", closed="right", label="right").ohlc()
    vol = df["size"].resample("60s", closed="right", label="right").sum()
    keep = ohlc.open.notna()
    out = {"ts": ohlc.index[keep].as_unit("ns").asi8}
    out.update({c: ohlc[c][keep].to_numpy() for c in ("open", "high", "low", "close")})
    out["volume"] = vol[keep].to_numpy()
    return out


def joined(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    parts = [p for p in parts if len(p["ts"])]
    return {c: np.concatenate([p[c] for p in parts]) for c in COLS}


def check(name: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    n = len(got["ts"])  # live paths leave the last bar open (no later trade)
    for c in COLS:
        if not np.array_equal(got[c], want[c][:n]):
            raise SystemExit(f"{name}: bars differ from pandas in {c}")
    if n < len(want["ts"]) - 1:
        raise SystemExit(f"{name}: {n} bars, pandas {len(want['ts'])}")


class PacedTrades:
    """An in-process trade feed (the live source's :class:`~connectors.live.feeds.Feed`):
    trade ``i`` is due ``i / rate`` s after the first poll and handed over in a delivery of
    its own, as :class:`~connectors.live.exchange_trades.ExchangeTradeThread` does; notes
    when the first trade after each bar's end was handed over (``closing``: bar ts -> s)."""

    topic = "bench-trades"

    def __init__(self, symbol: str, trades: dict[str, np.ndarray], rate: float) -> None:
        self._msg = RawMessage
        self.symbol, self.trades, self.rate = symbol, trades, rate
        self.exhausted = False
        self._i = 0
        self._t0: float | None = None
        self.closing: dict[int, float] = {}
        ends = (trades["ts"] - 1) // (60 * S) * (60 * S) + 60 * S  # each trade's bar end
        self._closes = {i: int(ends[i - 1]) for i in range(1, len(ends)) if ends[i] != ends[i - 1]}

    def poll(self, max_messages: int, timeout: float) -> list:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        due = min(len(self.trades["ts"]), int((now - self._t0) * self.rate) + 1, self._i +
                  max_messages)
        if due <= self._i:
            time.sleep(min(timeout, (self._i - (now - self._t0) * self.rate) / self.rate))
            return []
        out = []
        for i in range(self._i, due):
            one = {k: v[i : i + 1] for k, v in self.trades.items()}
            out.append(self._msg(0, i, self.symbol.encode(), None, trades=[(self.symbol, one)]))
        t = time.perf_counter()
        for i in range(self._i, due):
            if i in self._closes:
                self.closing[self._closes[i]] = t
        self._i = due
        self.exhausted = due >= len(self.trades["ts"])
        return out

    def positions(self) -> dict[int, int]:
        """Trades handed over."""
        return {0: self._i}

    def commit(self, positions: dict[int, int]) -> None:
        """Nothing to commit."""

    def status(self) -> str | None:
        """Never unwell."""
        return None

    def close(self) -> None:
        """Nothing to close."""


def order_latency(n_bars: int, per_bar: int, rate: float) -> dict:
    """Trade -> bar close -> order in a live run (see the module docstring): ms per bar."""
    class Jitter(Strategy):
        symbols = ["BTC-USDT"]
        interval = "1m"
        calendar = "crypto"

        def signal(self, bars):
            return bars.close / bars.close.shift(1) - 0.5  # moves on every bar: an order a bar

    rng = np.random.default_rng(3)
    t0 = 1_704_067_200 * S
    n = (n_bars + 2) * per_bar
    ts = t0 + np.sort(rng.integers(1, (n_bars + 2) * 60 * S, n))
    price = np.round(42_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    trades = {"ts": ts, "price": price, "size": np.round(rng.uniform(0.001, 1, n), 4),
              "id": np.array([str(i) for i in range(n)], dtype=object)}
    feed = PacedTrades("BTC-USDT", trades, rate)
    made: dict[int, float] = {}

    def on_order(strategy: str, intents: list, fills: list) -> None:
        t = time.perf_counter()
        for o in intents:
            made.setdefault(int(o.ts), t)

    real = live_runner.open_feed
    live_runner.open_feed = lambda *a, **k: ((lambda _positions: feed), handoff.LogSink())
    try:
        with tempfile.TemporaryDirectory() as d, world(Path(d)) as url:
            activate(url, "Jitter")
            opts = LiveOptions(source="bench:in-process", feed="trades", world="bench", url=url,
                               paper=True, warmup=0, data=Path(d) / "no-catalog",
                               start=int(t0), max_bars=n_bars, metrics_every=50,
                               orders_store=str(Path(d) / "orders.db"))
            run_live(Jitter, opts, on_order=on_order)
    finally:
        live_runner.open_feed = real
    keys = sorted(k for k in made if k in feed.closing)
    lat = np.array([(made[k] - feed.closing[k]) * 1e3 for k in keys])[len(keys) // 5 :]
    return {"bars": len(lat), "trades_per_bar": per_bar, "trades_per_s": rate,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--trades", type=int, help="trades to aggregate (default 1M, 50k quick)")
    ap.add_argument("--out", type=Path, default=RESULTS / "feeds.json")
    ap.add_argument("--order-bars", type=int, help="bars to orders (default 2,000, 300 quick)")
    args = ap.parse_args(argv)
    n = args.trades or (50_000 if args.quick else 1_000_000)
    trades = make_trades(n)
    rows: dict[str, float] = {}
    ref_t = time.perf_counter()
    ref = pandas_bars(trades)
    rows["pandas resample ohlc (all at once, peer)"] = n / (time.perf_counter() - ref_t)

    t0 = time.perf_counter()
    cat = trades_to_bars(trades, "1m")
    rows["catalog trades_to_bars (all at once)"] = n / (time.perf_counter() - t0)
    check("catalog", cat, ref)

    batch = 10_000
    arrow = [
        encode_trades_arrow({k: v[i : i + batch] for k, v in trades.items()})
        for i in range(0, n, batch)
    ]
    a = FeedAssembler.for_trades("1m", lateness=2 * S)
    t0 = time.perf_counter()
    parts = [b for m in arrow for _, b in a.decode(b"BTCUSDT", m)]
    rows["live, Arrow batches of 10,000 (decode + aggregate)"] = n / (time.perf_counter() - t0)
    check("arrow", joined(parts), ref)

    json_msgs = [
        encode_trade({k: trades[k][i] for k in ("ts", "price", "size", "id")}) for i in range(n)
    ]
    gc.collect()
    gc.freeze()  # the million prepared messages are not garbage a live run would scan
    a = FeedAssembler.for_trades("1m", lateness=2 * S)
    parts, lat = [], []
    t0 = time.perf_counter()
    for m in json_msgs:
        t = time.perf_counter_ns()
        out = a.decode(b"BTCUSDT", m)
        if out:
            lat.append(time.perf_counter_ns() - t)
            parts += [b for _, b in out]
    rows["live, one JSON message per trade (decode + aggregate)"] = n / (time.perf_counter() - t0)
    check("json", joined(parts), ref)

    op = TradeBars("1m", 2 * S)
    singles = [
        {
            "ts": trades["ts"][i : i + 1],
            "price": trades["price"][i : i + 1],
            "size": trades["size"][i : i + 1],
            "id": trades["id"][i : i + 1],
        }
        for i in range(n)
    ]
    parts = []
    gc.collect()
    gc.freeze()
    t0 = time.perf_counter()
    for one in singles:
        out = op.add(one)
        if len(out["ts"]):
            parts.append(out)
    rows["operator alone, one trade at a time"] = n / (time.perf_counter() - t0)
    check("operator", joined(parts), ref)

    peer = rows["pandas resample ohlc (all at once, peer)"]
    table = [[k, f"{v:,.0f}", f"{v / peer:.2f}x"] for k, v in rows.items()]
    print_table(
        f"trades aggregated into 1m bars, {n:,} trades, one core",
        ["path", "trades/s", "vs pandas"],
        table,
    )
    p50, p99 = (float(np.percentile(lat, q)) / 1e3 for q in (50, 99))
    print_table(
        "trade that closes a bar -> bar out (decode + aggregate, JSON)",
        ["bars", "p50 µs", "p99 µs"],
        [[len(lat), f"{p50:.1f}", f"{p99:.1f}"]],
    )
    order = order_latency(args.order_bars or (300 if args.quick else 2_000), 20, 400.0)
    print_table(
        "trade that closes a bar -> bar -> order, a live run in process (paper fills, no venue)",
        ["bars", "trades/bar", "trades/s", "p50 ms", "p99 ms"],
        [[order["bars"], order["trades_per_bar"], f"{order['trades_per_s']:.0f}",
          f"{order['p50_ms']:.2f}", f"{order['p99_ms']:.2f}"]],
    )
    doc = {
        "machine": machine(),
        "trade_to_order_ms": order,
        "trades": n,
        "trades_per_s": rows,
        "vs_pandas": {k: v / peer for k, v in rows.items()},
        "close_latency_us": {"bars": len(lat), "p50": p50, "p99": p99},
    }
    print(f"wrote {write_results(args.out, doc)}")


if __name__ == "__main__":
    main()
