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

