"""The ccxt origin against a fake exchange of ccxt's documented shape (no network here: the
exchange call itself is not exercised)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from connectors.data.catalog import Catalog
from connectors.data.ccxt_origin import CcxtOrigin, ohlcv_to_bars
from connectors.data.origins import OriginError, SymbolNotFound
from connectors.data.seamless import SeamlessDataProvider
from qmtl.core.times import parse_time

MS = 60_000  # one minute in ms
T0 = parse_time("2024-05-01") // 10**6  # ms


class FakeExchange:
    """``fetch_ohlcv(symbol, timeframe, since, limit)`` as ccxt documents it: rows
    ``[open ms, o, h, l, c, v]`` with open time >= since, ascending, at most ``limit``."""

    id = "fakex"
    timeframes = {"1m": "1m", "5m": "5m", "1h": "1h", "1d": "1d"}

    def __init__(self, first_ms: int, n: int, step_ms: int = MS, fail: int = 0) -> None:
        self.opens = first_ms + step_ms * np.arange(n)
        rng = np.random.default_rng(0)
        self.close = 100 + np.cumsum(rng.normal(0, 1, n))
        self.calls: list[tuple] = []
        self.fail = fail

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None):
        self.calls.append((symbol, timeframe, since, limit))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("exchange not reachable")
        if symbol != "BTC/USDT":
            raise type("BadSymbol", (Exception,), {})(f"fakex does not have market symbol {symbol}")
        i = int(np.searchsorted(self.opens, since))
        rows = []
        for j in range(i, min(i + limit, len(self.opens))):
            c = float(self.close[j])
            rows.append([int(self.opens[j]), c - 0.5, c + 1, c - 1, c, 10.0 + j])
        return rows


def test_documented_rows_become_bars_stamped_at_close():
    rows = [[T0 + MS, 2.0, 3.0, 1.0, 2.5, 7.0], [T0, 1.0, 2.0, 0.5, 1.5, None]]
    bars = ohlcv_to_bars(rows, "1m")
    assert bars["ts"].tolist() == [(T0 + MS) * 10**6, (T0 + 2 * MS) * 10**6]  # sorted, at close
    assert bars["open"].tolist() == [1.0, 2.0] and bars["close"].tolist() == [1.5, 2.5]
    assert bars["volume"].tolist() == [0.0, 7.0]
    assert bars["ts"].dtype == np.int64


def test_pagination_covers_the_range_exactly_once():
    ex = FakeExchange(T0, 5000)
    origin = CcxtOrigin(ex, limit=700, clock=lambda: 2**62)
    start, end = (T0 + 100 * MS) * 10**6, (T0 + 4000 * MS) * 10**6
    pages = list(origin.fetch("BTC-USDT", "1m", start, end))
    ts = np.concatenate([p["ts"] for p in pages])
    # every bar closing in [start, end], once, in order
    assert ts.tolist() == [(T0 + k * MS) * 10**6 for k in range(100, 4001)]
    sinces = [c[2] for c in ex.calls]
    assert sinces[0] == T0 + 99 * MS  # the bar opening one minute before start closes at start
    assert all(b - a == 700 * MS for a, b in itertools.pairwise(sinces))
    assert {c[0] for c in ex.calls} == {"BTC/USDT"} and {c[3] for c in ex.calls} == {700}
    assert len(ex.calls) == 6  # ceil(3901 / 700), no extra call past the end


def test_bars_not_yet_closed_are_not_served():
    ex = FakeExchange(T0, 100)
    now = (T0 + 50 * MS + 30_000) * 10**6  # half-way through the 51st minute
    origin = CcxtOrigin(ex, limit=1000, clock=lambda: now)
    ts = np.concatenate([p["ts"] for p in origin.fetch("BTC-USDT", "1m", 0, 2**62)])
    assert ts[-1] == (T0 + 50 * MS) * 10**6 and ts[-1] <= now


def test_network_errors_are_retried_with_backoff_then_reported():
    slept = []
    ex = FakeExchange(T0, 10, fail=2)
    origin = CcxtOrigin(ex, retries=3, backoff=0.5, sleep=slept.append, clock=lambda: 2**62)
    assert len(next(origin.fetch("BTC-USDT", "1m", 0, 2**62))["ts"]) == 10
    assert slept == [0.5, 1.0]
    ex.fail = 10
    origin = CcxtOrigin(ex, retries=1, sleep=slept.append, clock=lambda: 2**62)
    with pytest.raises(OriginError, match="ccxt:fakex: fetch_ohlcv\\('BTC/USDT', '1m', since="):
        list(origin.fetch("BTC-USDT", "1m", 0, 2**62))


def test_unknown_market_and_timeframe():
    origin = CcxtOrigin(FakeExchange(T0, 10), clock=lambda: 2**62)
    with pytest.raises(SymbolNotFound, match="'DOGE/USDT'"):
        list(origin.fetch("DOGE-USDT", "1m", 0, 2**62))
    with pytest.raises(SymbolNotFound, match="no 4h timeframe"):
        origin.fetch("BTC-USDT", "4h", 0, 1)
    mapped = CcxtOrigin(FakeExchange(T0, 10), symbol_map={"XBT": "BTC/USDT"}, clock=lambda: 2**62)
    assert mapped.market("XBT") == "BTC/USDT" and mapped.market("ETH-BTC") == "ETH/BTC"


def test_exchange_id_needs_the_extra():
    try:
        import ccxt  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"pip install 'qmtl\[ccxt\]'"):
            CcxtOrigin("binance")
    else:  # pragma: no cover - only where ccxt is installed
        assert CcxtOrigin("binance").name == "ccxt:binance"


def test_as_a_backfill_origin(tmp_path):
    ex = FakeExchange(T0, 3000)
    data = SeamlessDataProvider(Catalog(tmp_path), origin=CcxtOrigin(ex, limit=1000,
                                                                     clock=lambda: 2**62))
    start, end = (T0 + MS) * 10**6, (T0 + 2000 * MS) * 10**6
    bars = data.read("BTC-USDT", "1m", start, end)
    assert len(bars["ts"]) == 2000 and bars["close"][0] == ex.close[0]
    calls = len(ex.calls)
    data.read("BTC-USDT", "5m", start, end)  # resampled from the 1m bars now stored
    assert len(ex.calls) == calls


def test_a_bad_symbol_is_not_retried():
    slept = []
    ex = FakeExchange(T0, 10)
    origin = CcxtOrigin(ex, retries=3, sleep=slept.append, clock=lambda: 2**62)
    with pytest.raises(SymbolNotFound):
        list(origin.fetch("DOGE-USDT", "1m", 0, 2**62))
    assert len(ex.calls) == 1 and slept == []
