"""The exchange trade feed (connectors.live.exchange_trades) with ccxt pointed at the local
Binance server (tests/exchange/binance_server.py, aggTrades REST and the @aggTrade stream):
history caught up from REST page by page, then the stream; a connection dropped mid-bar and
refused for a few bars is completed from REST; every trade once, and the bars the live
operator makes of them equal the catalog's bars of the server's full trade history."""

from __future__ import annotations

import time

import numpy as np
import pytest

from connectors.live.exchange_feed import make_exchange
from connectors.live.exchange_trades import ExchangeTradeFeed, ExchangeTradeThread
from dataflows.trade_bars import TradeBars, trades_to_bars
from tests.exchange.binance_server import BinanceServer, make_history, make_trades

pytest.importorskip("ccxt.pro")

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, ms
MARKETS = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}
AFTER = (T0 + 60_000) * 10**6  # trades after the first minute


@pytest.fixture
def server():
    srv = BinanceServer(
        {m: make_history(200, T0, i) for i, m in enumerate(MARKETS)},
        at=100,
        trades={m: make_trades(200, T0, 10 + i) for i, m in enumerate(MARKETS)},
    )
    yield srv.start()
    srv.stop()


def happened(server, market: str) -> dict[str, np.ndarray]:
    """The server's trades after AFTER up to its time, as trade columns (the reference)."""
    rows = server.happened(market)
    rows = rows[rows[:, 1] * 10**6 > AFTER]
    return {
        "ts": rows[:, 1].astype(np.int64) * 10**6,
        "price": rows[:, 2],
        "size": rows[:, 3],
        "id": np.array([str(int(i)) for i in rows[:, 0]], dtype=object),
    }


class Got:
    def __init__(self, feed: ExchangeTradeThread) -> None:
        self.feed = feed
        self.parts: dict[str, list] = {}

    def n(self, sym: str) -> int:
        return sum(len(b["ts"]) for b in self.parts.get(sym, []))

    def until(self, server, timeout: float = 20.0) -> None:
        """Poll until every market has all the trades the server has had."""
        want = {s.replace("/", "-"): len(happened(server, m)["ts"]) for m, s in MARKETS.items()}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.feed.poll(1000, 0.05):
                ((sym, b),) = m.trades
                self.parts.setdefault(sym, []).append(b)
            if all(self.n(s) >= k for s, k in want.items()):
                return

    def col(self, sym: str, c: str) -> np.ndarray:
        return np.concatenate([b[c] for b in self.parts[sym]])


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)


def feed_on(server, **kw) -> tuple[ExchangeTradeThread, list]:
    made: list[ExchangeTradeFeed] = []

    def make() -> ExchangeTradeFeed:
        ex = make_exchange("ccxt:binance", server.urls())
        made.append(ExchangeTradeFeed(ex, list(MARKETS.values()), AFTER, limit=300,
                                      backoff=0.05, **kw))
        return made[0]

    return ExchangeTradeThread(make), made


def check_against_history(server, got: Got) -> None:
    for market, symbol in MARKETS.items():
        sym = symbol.replace("/", "-")
        want = happened(server, market)
        ids = got.col(sym, "id")
        assert len(set(ids)) == len(ids)  # no trade twice
        assert sorted(ids, key=int) == list(want["id"])  # none missing
        ts = got.col(sym, "ts")
        assert np.all(np.diff(ts) >= 0)  # in time order
        # the live operator over the trades as delivered = the catalog over the history
        op = TradeBars("1m", 0)
        live = [op.add(b) for b in got.parts[sym]]
        live = {c: np.concatenate([b[c] for b in live]) for c in live[0]}
        ref = trades_to_bars(want, "1m")
        n = len(live["ts"])
        assert n == len(ref["ts"]) - 1  # all but the bar in progress
        for c in ("ts", "open", "high", "low", "close", "volume"):
            assert np.array_equal(live[c], ref[c][:n]), c


def test_through_a_dropped_connection_and_a_gap_every_trade_once(server):
    feed, made = feed_on(server)
    got = Got(feed)
    try:
        got.until(server)  # the history, from REST in pages of 300 (about 3,000 trades)
        assert server.hits["aggTrades"] >= 2 * 10
        wait_for(lambda: server.streams() == 2)
        server.tick(3)  # three minutes of trades on the stream
        got.until(server)
        pages = server.hits["aggTrades"]
        server.drop()  # five seconds into a minute: its first trades were sent
        server.refuse = True
        server.tick(4)  # four minutes of trades while the feed cannot connect
        wait_for(lambda: server.hits["ws_refused"] >= 1)
        server.refuse = False
        got.until(server)
        assert server.hits["aggTrades"] > pages  # the gap came from REST
        wait_for(lambda: server.streams() == 2)
        server.tick(3)
        got.until(server)
    finally:
        feed.close()
    f = made[0]
    assert f.reconnects >= 2 and f.streamed > 0 and f.backfilled > 0
    check_against_history(server, got)


def test_without_a_stream_rest_polling_gives_the_same_trades(server):
    """REST polling, through two answers of 429 (rate limited): backed off, then on."""
    feed, made = feed_on(server, websocket=False, poll_every=0.02)
    got = Got(feed)
    try:
        got.until(server)
        server.rate_limited = 2
        server.tick(4)
        got.until(server)
    finally:
        feed.close()
    assert server.hits["ws"] == 0 and server.hits["429"] == 2
    assert made[0].reconnects >= 2 and made[0].streamed == 0
    check_against_history(server, got)



def test_qmtl_feed_ccxt_trades_puts_every_trade_on_kafka_through_a_drop(
    server, tmp_path, kafka, monkeypatch
):
    """``qmtl feed ccxt:binance --trades`` through a dropped and refused connection: the
    topic's trades, made into bars by the live run's assembler message by message, equal the
    catalog's bars of the server's full trade history; the closed bars land in the catalog."""
    import json
    import threading

    from typer.testing import CliRunner

    from connectors.data.catalog import Catalog
    from connectors.live.assembler import FeedAssembler
    from qmtl.cli import app
    from tests.conftest import consume_all

    monkeypatch.setenv("QMTL_CCXT_URLS", json.dumps(server.urls()))
    topic = f"trades-{time.time_ns()}"
    final_ms = server.t0 + 110 * 60_000 + 5_000  # the server's time after the ticks below
    total = sum(int(((r[:, 1] * 10**6 > AFTER) & (r[:, 1] <= final_ms)).sum())
                for r in server.trades.values())
    args = ["feed", "ccxt:binance", "--trades", "--symbols", "BTC/USDT,ETH/USDT",
            "--interval", "1m", "--since", "2024-01-01T00:02:00Z", "--data",
            str(tmp_path / "cat"), "--brokers", kafka.brokers, "--topic", topic,
            "--max-trades", str(total)]
    out: dict = {}
    run = threading.Thread(target=lambda: out.update(res=CliRunner().invoke(app, args)),
                           daemon=True)
    run.start()
    wait_for(lambda: server.streams() == 2, 30)
    server.tick(3)
    server.drop()
    server.refuse = True
    server.tick(4)
    wait_for(lambda: server.hits["ws_refused"] >= 1)
    server.refuse = False
    wait_for(lambda: server.streams() == 2, 30)
    server.tick(3)
    run.join(60)
    assert not run.is_alive()
    res = out["res"]
    assert res.exit_code == 0, res.output
    assert f"{total} trades of BTC-USDT, ETH-USDT" in res.output
    assert server.now_ms == final_ms and server.hits["ws"] >= 2
    msgs = consume_all(kafka.brokers, topic, total)
    assert len(msgs) == total
    a = FeedAssembler.for_trades("1m", lateness=0)
    bars: dict[str, list] = {}
    for value in msgs:  # the symbol rides in the value too (and is the key)
        for sym, b in a.decode(None, value):
            bars.setdefault(sym, []).append(b)
    assert a.counts()["duplicates"] == 0
    cat = Catalog(tmp_path / "cat")
    for market, symbol in MARKETS.items():
        sym = symbol.replace("/", "-")
        ref = trades_to_bars(happened(server, market), "1m")
        live = {c: np.concatenate([b[c] for b in bars[sym]]) for c in ref}
        stored = cat.read(sym, "1m")
        n = len(ref["ts"]) - 1  # the bar in progress stays open
        for c in ("ts", "open", "high", "low", "close", "volume"):
            assert np.array_equal(live[c], ref[c][:n]), c
            assert np.array_equal(stored[c], ref[c][:n]), c
