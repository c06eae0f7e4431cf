"""bench/feeds.py runs (on a few thousand trades) and checks every path's bars against
pandas', so the benchmark and its checks cannot rot."""

from __future__ import annotations

import json

from bench.feeds import main


def test_the_feeds_benchmark_runs_and_its_bars_agree(tmp_path):
    out = tmp_path / "feeds.json"
    # SystemExit if any path's bars differ; 60 bars of a live run from trades to orders
    main(["--trades", "3000", "--order-bars", "60", "--out", str(out)])
    doc = json.loads(out.read_text())
    assert doc["trades"] == 3000 and len(doc["trades_per_s"]) == 5
    assert doc["close_latency_us"]["bars"] >= 4
    order = doc["trade_to_order_ms"]
    assert order["bars"] >= 40  # an order for (nearly) every live bar, each matched to its trade
    assert 0 < order["p50_ms"] <= order["p99_ms"]
