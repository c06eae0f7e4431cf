"""A live run reading an exchange directly (``--source ccxt:binance``, no Kafka), against
the local Binance server: it warms up on the catalog before --start, takes the bars from it
from REST and then the websocket, and gives the returns of a backtest over the server's
history from the first live bar."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from connectors.data.catalog import Catalog
from connectors.data.ccxt_origin import ohlcv_to_bars
from qmtl import Strategy
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import activate, max_abs_diff, world_server
from tests.exchange.binance_server import BinanceServer, make_history

pytest.importorskip("ccxt.pro")
T0 = 1_704_067_200_000


class Crypto(Strategy):
    symbols = ["BTC-USDT"]
    interval = "1m"
    calendar = "crypto"

    def signal(self, bars):
        return bars.close.sma(3) > bars.close.sma(9)


def test_a_live_run_on_the_exchange_equals_the_backtest(tmp_path, monkeypatch):
    srv = BinanceServer({"BTCUSDT": make_history(200, T0, 4)}, at=100).start()
    monkeypatch.setenv("QMTL_CCXT_URLS", json.dumps(srv.urls()))
    bars = ohlcv_to_bars(srv.history["BTCUSDT"][:105].tolist(), "1m")
    Catalog(tmp_path / "catalog").write("BTC-USDT", "1m", {k: v[:60] for k, v in bars.items()})
    out: dict = {}
    try:
        with world_server(tmp_path) as url:
            activate(url, "w", "Crypto")
            opts = LiveOptions(
                source="ccxt:binance",
                world="w",
                url=url,
                paper=True,
                data=tmp_path / "catalog",
                max_bars=45,
                start=int(bars["ts"][60]),
                orders_store=str(tmp_path / "orders.db"),
            )
            run = threading.Thread(
                target=lambda: out.update(res=run_live(Crypto, opts)), daemon=True
            )
            run.start()
            deadline = time.monotonic() + 30
            while srv.streams() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            srv.tick(5)  # five more bars close on the stream
            run.join(60)
            assert not run.is_alive()
    finally:
        srv.stop()
    res = out["res"]
    Catalog(tmp_path / "full").write("BTC-USDT", "1m", bars)
    bt = backtest(Crypto, data=tmp_path / "full", start=int(bars["ts"][60]))
    assert res.stats.live_bars == 45 and srv.hits["klines"] >= 1
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
