"""A live run on the exchange's trades (``--source ccxt:binance --feed trades``, no Kafka),
against the local Binance server: it warms up on catalog bars made of the server's trades
before --start, then takes the trades from REST and the @aggTrade stream, makes the bars in
the flow, and gives the returns of a backtest over the catalog's bars of the server's full
trade history from the first live bar."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from connectors.data.catalog import Catalog
from dataflows.trade_bars import trades_to_bars
from qmtl import Strategy
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import activate, max_abs_diff, world_server
from tests.exchange.binance_server import BinanceServer, make_history, make_trades

pytest.importorskip("ccxt.pro")
T0 = 1_704_067_200_000


class CryptoTrades(Strategy):
    symbols = ["BTC-USDT"]
    interval = "1m"
    calendar = "crypto"

    def signal(self, bars):
        return bars.close.sma(3) > bars.close.sma(9)


def bars_of(srv: BinanceServer) -> dict[str, np.ndarray]:
    """The catalog's bars of the trades the server has had (the bar in progress left out)."""
    rows = srv.happened("BTCUSDT")
    b = trades_to_bars({"ts": rows[:, 1].astype(np.int64) * 10**6, "price": rows[:, 2],
                        "size": rows[:, 3], "id": [str(int(i)) for i in rows[:, 0]]}, "1m")
    return {k: v[:-1] for k, v in b.items()}


def test_a_live_run_on_the_exchanges_trades_equals_the_backtest(tmp_path, monkeypatch):
    srv = BinanceServer({"BTCUSDT": make_history(200, T0, 4)}, at=100,
                        trades={"BTCUSDT": make_trades(200, T0, 5)}).start()
    monkeypatch.setenv("QMTL_CCXT_URLS", json.dumps(srv.urls()))
    early = bars_of(srv)
    assert len(early["ts"]) == 100  # a bar every minute
    Catalog(tmp_path / "catalog").write("BTC-USDT", "1m", {k: v[:60] for k, v in early.items()})
    out: dict = {}
    try:
        with world_server(tmp_path) as url:
            activate(url, "w", "CryptoTrades")
            opts = LiveOptions(
                source="ccxt:binance",
                feed="trades",
                world="w",
                url=url,
                paper=True,
                data=tmp_path / "catalog",
                max_bars=44,
                start=int(early["ts"][60]),
                orders_store=str(tmp_path / "orders.db"),
            )
            run = threading.Thread(
                target=lambda: out.update(res=run_live(CryptoTrades, opts)), daemon=True
            )
            run.start()
            deadline = time.monotonic() + 30
            while srv.streams() < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            srv.tick(5)  # five more minutes of trades on the stream
            run.join(60)
            assert not run.is_alive()
    finally:
        srv.stop()
    res = out["res"]
    full = bars_of(srv)
    Catalog(tmp_path / "full").write("BTC-USDT", "1m", full)
    bt = backtest(CryptoTrades, data=tmp_path / "full", start=int(full["ts"][60]))
    assert res.stats.live_bars == 44 and srv.hits["aggTrades"] >= 1
    assert res.stats.feed.counts()["trades"] > 44 * 20
    assert np.array_equal(res.ts, bt.ts[:44])
    assert max_abs_diff(res.returns, bt.returns[:44]) <= 1e-12
