"""The exchange feed (connectors.live.exchange_feed) with ccxt pointed at a local server that
speaks Binance's documented REST and websocket API (tests/exchange/binance_server.py): history
backfilled from REST page by page, then bars from the kline stream; a connection dropped
mid-bar and refused for ten bars is backfilled from REST; the bars produced equal the
server's full history, with no gap and no duplicate. REST polling where there is no stream."""

from __future__ import annotations

import time

import numpy as np
import pytest

from connectors.data.ccxt_origin import ohlcv_to_bars
from connectors.live.exchange_feed import ExchangeBarFeed, ExchangeFeed, make_exchange
from tests.exchange.binance_server import BinanceServer, make_history

pytest.importorskip("ccxt.pro")

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, ms
MARKETS = {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}


@pytest.fixture
def server():
    srv = BinanceServer({m: make_history(200, T0, i) for i, m in enumerate(MARKETS)}, at=100)
    yield srv.start()
    srv.stop()


class Collected:
    def __init__(self, feed: ExchangeBarFeed) -> None:
        self.feed = feed
        self.bars: dict[str, list] = {}

    def until(self, n: int, timeout: float = 20.0) -> None:
        """Poll until every symbol has ``n`` bars (or the timeout: the asserts then say)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.feed.poll(1000, 0.05):
                ((sym, b),) = m.bars
                self.bars.setdefault(sym, []).append(b)
            if len(self.bars) == 2 and all(
                sum(len(b["ts"]) for b in v) >= n for v in self.bars.values()
            ):
                return

    def ts(self, sym: str) -> np.ndarray:
        return np.concatenate([b["ts"] for b in self.bars[sym]])

    def column(self, sym: str, c: str) -> np.ndarray:
        return np.concatenate([b[c] for b in self.bars[sym]])


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)


def feed_on(server, **kw) -> tuple[ExchangeBarFeed, list]:
    made: list[ExchangeFeed] = []

    def make() -> ExchangeFeed:
        ex = make_exchange("ccxt:binance", server.urls())
        made.append(
            ExchangeFeed(
                ex,
                list(MARKETS.values()),
                "1m",
                start=(T0 + 60_000) * 10**6,
                limit=40,
                backoff=0.05,
                **kw,
            )
        )
        return made[0]

    return ExchangeBarFeed(make), made


def expected(server, market: str, n: int) -> dict[str, np.ndarray]:
    return ohlcv_to_bars(server.history[market][:n].tolist(), "1m")


def test_through_a_dropped_connection_and_a_gap_the_bars_equal_the_servers_history(server):
    feed, made = feed_on(server)
    got = Collected(feed)
    try:
        got.until(100)  # the 100 closed bars, from REST in pages of 40
        assert server.hits["klines"] >= 2 * 3
        wait_for(lambda: server.streams() == 2)
        server.tick(5)  # five bars close on the stream
        got.until(105)
        rest_pages = server.hits["klines"]
        server.drop()  # mid-bar: the bar in progress was half sent
        server.refuse = True
        server.tick(10)  # ten bars close while the feed cannot connect
        wait_for(lambda: server.hits["ws_refused"] >= 1)
        server.refuse = False
        got.until(115)
        assert server.hits["klines"] > rest_pages  # the gap came from REST
        wait_for(lambda: server.streams() == 2)
        server.tick(5)
        got.until(120)
    finally:
        feed.close()
    assert made[0].reconnects >= 2  # the drop, then at least one refused reconnect
    for market, symbol in MARKETS.items():
        want = expected(server, market, 120)
        ts = got.ts(symbol.replace("/", "-"))
        assert np.all(np.diff(ts) > 0)  # no duplicate, in order
        assert np.array_equal(ts, want["ts"])  # no gap: every bar of the history
        for c in ("open", "high", "low", "close", "volume"):
            assert np.array_equal(got.column(symbol.replace("/", "-"), c), want[c]), c


def test_without_a_stream_rest_polling_gives_the_same_bars(server):
    """REST polling, through three answers of 429 (rate limited): backed off, then on."""
    feed, made = feed_on(server, websocket=False, poll_every=0.02)
    got = Collected(feed)
    try:
        got.until(100)
        server.rate_limited = 3
        server.tick(7)
        got.until(107)
    finally:
        feed.close()
    assert server.hits["ws"] == 0 and server.hits["klines_429"] == 3
    assert made[0].reconnects >= 3
    for market, symbol in MARKETS.items():
        want = expected(server, market, 107)
        assert np.array_equal(got.ts(symbol.replace("/", "-")), want["ts"])
        assert np.array_equal(got.column(symbol.replace("/", "-"), "close"), want["close"])


def test_qmtl_feed_ccxt_lands_the_bars_in_the_catalog_and_on_kafka(
    server, tmp_path, kafka, monkeypatch
):
    import json

    from typer.testing import CliRunner

    from connectors.data.catalog import Catalog
    from qmtl.cli import app
    from tests.conftest import consume_all

    monkeypatch.setenv("QMTL_CCXT_URLS", json.dumps(server.urls()))
    topic = f"bars-{time.time_ns()}"
    args = [
        "feed",
        "ccxt:binance",
        "--symbols",
        "BTC/USDT,ETH/USDT",
        "--interval",
        "1m",
        "--since",
        "2024-01-01T00:01:00Z",
        "--data",
        str(tmp_path / "cat"),
        "--brokers",
        kafka.brokers,
        "--topic",
        topic,
        "--max-bars",
        "200",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "200 bars of BTC-USDT, ETH-USDT" in res.output
    cat = Catalog(tmp_path / "cat")
    for market, symbol in MARKETS.items():
        want = expected(server, market, 100)
        got = cat.read(symbol.replace("/", "-"), "1m")
        assert np.array_equal(got["ts"], want["ts"]) and np.array_equal(got["close"], want["close"])
    assert len(consume_all(kafka.brokers, topic, 200)) == 200
    # run again: it resumes after the catalog's last bar (nothing closed since: no bar)
    server.tick(3)
    again = CliRunner().invoke(app, [*args[:-2], "--max-bars", "6"])
    assert again.exit_code == 0, again.output
    assert len(cat.read("BTC-USDT", "1m")["ts"]) == 103
    bad = CliRunner().invoke(app, ["feed", "ccxt:nosuch", "--symbols", "BTC/USDT"])
    assert bad.exit_code != 0 and "ccxt has no exchange 'nosuch'" in bad.output
