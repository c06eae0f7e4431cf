"""A live run's own /metrics (``--metrics-port``), scraped while it runs on a Kafka feed
(Tansu): bars in, orders held then sent, the newest bar and the lag, each equal to what the
run itself reports."""

from __future__ import annotations

import threading

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qmtl import Strategy
from qmtl.live import LiveOptions, LiveResult, run_live
from tests.e2e.live_helpers import (
    activate,
    make_data,
    publish,
    slice_data,
    topic_name,
    wait_for,
    world_server,
    write_catalog,
)
from tests.world_api.conftest import free_port


class Long(Strategy):
    """Always long both symbols: orders come only from the world's decisions."""

    symbols = ["AAA", "BBB"]

    def signal(self, bars):
        return 1.0


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def val(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_live_run_serves_its_counters_while_it_runs(kafka, tmp_path):
    data = make_data(60)
    first, second = slice_data(data, 0, 30), slice_data(data, 30, 60)
    write_catalog(tmp_path / "catalog", slice_data(data, 0, 0))
    topic = topic_name()
    port = free_port()
    orders: list = []
    lock = threading.Lock()

    def on_order(_sid, intents, _fills) -> None:
        with lock:
            orders.extend(intents)

    with world_server(tmp_path) as url:
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", orders_store=str(tmp_path / "o.db"),
                           warmup=0, stop_after_idle=10.0, metrics_port=port,
                           max_activation_age=3600)
        box: dict[str, LiveResult | BaseException] = {}

        def run() -> None:
            try:
                box["result"] = run_live(Long, opts, on_order=on_order)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        # phase 1: 30 bars of each symbol while the world knows nothing of the strategy
        assert publish(kafka.brokers, topic, first) == 60

        def live_bars(n: int) -> bool:
            try:
                return val(scrape(port), "qmtl_live_bars_total", kind="live") == n
            except httpx.HTTPError:
                return False

        assert wait_for(lambda: live_bars(60), 60), box
        assert wait_for(lambda: val(scrape(port), "qmtl_live_gate_total", verdict="hold") == 60,
                        30)
        held = scrape(port)
        assert val(held, "qmtl_live_gate_total", verdict="trade") == 0
        assert val(held, "qmtl_live_orders_total", mode="paper") == 0 and orders == []
        last = max(int(b["ts"][-1]) for b in first.values()) / 1e9
        assert val(held, "qmtl_live_last_bar_seconds") == pytest.approx(last)
        lag = val(held, "qmtl_live_lag_seconds")
        assert lag > 0 and val(held, "qmtl_live_idle_seconds") >= 0
        info = [k for k in held if k[0] == "qmtl_live_run_info"]
        assert dict(info[0][1])["world"] == "w" and dict(info[0][1])["mode"] == "paper"

        # phase 2: the world activates it; the next 30 bars of each symbol trade
        activate(url, "w", "Long")
        assert publish(kafka.brokers, topic, second) == 60
        assert wait_for(lambda: live_bars(120), 60), box
        assert wait_for(lambda: sum(val(scrape(port), "qmtl_live_gate_total", verdict=v)
                                    for v in ("hold", "trade", "flatten")) == 120, 30)
        after = scrape(port)
        with lock:
            sent = len(orders)
        assert val(after, "qmtl_live_gate_total", verdict="trade") > 0
        assert val(after, "qmtl_live_orders_total", mode="paper") == sent > 0
        assert val(after, "qmtl_live_fills_total") >= 0
        assert val(after, "qmtl_live_last_bar_seconds") == pytest.approx(
            max(int(b["ts"][-1]) for b in second.values()) / 1e9)
        thread.join(120)
        assert not thread.is_alive() and "error" not in box, box.get("error")
        result = box["result"]
    assert isinstance(result, LiveResult) and result.stats.live_bars == 120
    assert result.new_orders == sent
    # the server stopped with the run
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
