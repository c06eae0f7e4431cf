"""A local exchange that answers as Binance's documented spot API does, for ccxt pointed at it
(``exchange.urls`` override): REST ``GET /api/v3/exchangeInfo``, ``/api/v3/time``,
``/api/v3/klines`` (rows ``[open time, "open", "high", "low", "close", "volume", close time,
...]``, at most ``limit``, default 500, max 1000) and the websocket market streams: a client
connects to ``/stream/<n>`` (ccxt's ``/ws/<n>`` path, renamed so that ccxt takes it for the
spot stream host), sends ``{"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1}``,
gets ``{"result": null, "id": 1}`` and then ``{"e": "kline", "E": ..., "s": "BTCUSDT", "k":
{"t": open, "T": close, "s", "i", "o", "c", "h", "l", "v", "x": closed, ...}}`` events.
With a trade history, also ``GET /api/v3/aggTrades`` (``symbol``, ``fromId``, ``startTime``,
``endTime``, ``limit``: default 500, max 1000; ``startTime`` and ``endTime`` at most an hour
apart, else Binance's -1127; rows ``{"a": id, "p", "q", "f", "l", "T": time, "m": buyer is
maker, "M"}``, the most recent ones when no id or time is given) and the
``<symbol>@aggTrade`` stream (``{"e": "aggTrade", "E", "s", "a", "p", "q", "f", "l", "T",
"m", "M"}``, one event per trade as it happens): ccxt's ``fetch_trades`` reads the former,
``watch_trades(..., params={"name": "aggTrade"})`` the latter, with the same ids.

The market is simulated: every symbol has a full history of 1m klines fixed in advance, and
the server's clock (``now_ms``) moves only when a test calls :meth:`BinanceServer.tick` (a bar
closes: its final kline with ``x`` true, then the next bar's first update with ``x`` false).
:meth:`BinanceServer.drop` closes every websocket (a dropped connection: ccxt reconnects);
``refuse`` keeps new websocket connections out while set (the gap a feed must backfill);
``rate_limited = N`` answers the next N klines or aggTrades requests with Binance's 429. Every
request is counted per path (``hits``) so a test can check the feed's REST use. Documented
from https://developers.binance.com/docs/binance-spot-api-docs (REST market data endpoints,
web socket streams: kline/candlestick streams, aggregate trade streams; the
compressed/aggregate trades list).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

STEP_MS = 60_000


def _symbol_info(symbol: str, base: str, quote: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01",
                "maxPrice": "1000000.00",
                "tickSize": "0.01",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001",
                "maxQty": "9000.00",
                "stepSize": "0.00001",
            },
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
    }


def make_history(n: int, t0_ms: int, seed: int) -> np.ndarray:
    """``n`` 1m klines from open time ``t0_ms``: rows of open ms, o, h, l, c, v."""
    rng = np.random.default_rng(seed)
    close = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n))), 2)
    open_ = np.r_[close[0], close[:-1]]
    high = np.round(np.maximum(open_, close) * (1 + rng.uniform(0, 1e-3, n)), 2)
    low = np.round(np.minimum(open_, close) * (1 - rng.uniform(0, 1e-3, n)), 2)
    vol = np.round(rng.uniform(0.1, 20, n), 5)
    opens = t0_ms + np.arange(n) * STEP_MS
    return np.column_stack([opens, open_, high, low, close, vol])


def make_trades(minutes: int, t0_ms: int, seed: int, per_minute: int = 30) -> np.ndarray:
    """About ``per_minute`` trades a minute for ``minutes`` minutes from ``t0_ms``: rows of
    aggregate trade id (from 1, consecutive), time ms (some trades share one), price,
    quantity, buyer-is-maker (0/1)."""
    rng = np.random.default_rng(seed)
    n = minutes * per_minute
    ts = np.sort(t0_ms + rng.integers(0, minutes * STEP_MS, n))
    ts[1::7] = ts[0:-1:7][: len(ts[1::7])]  # every seventh trade at its neighbour's time
    ts = np.sort(ts)
    price = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 2e-4, n))), 2)
    qty = np.round(rng.uniform(0.0001, 2, n), 5)
    maker = rng.integers(0, 2, n)
    return np.column_stack([np.arange(1, n + 1), ts, price, qty, maker])


class BinanceServer:
    """The server (see the module docstring); ``start()`` serves it on 127.0.0.1 in a
    thread, ``urls()`` is the ccxt ``urls['api']`` override."""

    def __init__(
        self,
        history: dict[str, np.ndarray],
        at: int,
        trades: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.history = history  # market id (BTCUSDT) -> klines
        self.trades = trades or {}  # market id -> trades (make_trades' rows)
        self.at = at  # index of the bar in progress: bars before it have closed
        self.hits: Counter[str] = Counter()
        self.refuse = False
        self.rate_limited = 0  # the next N klines requests answer 429 (Binance's rate limit)
        self._sockets: list[tuple[web.WebSocketResponse, set[str]]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    @property
    def t0(self) -> int:
        return int(next(iter(self.history.values()))[0, 0])

    @property
    def now_ms(self) -> int:
        """The server's time: a few seconds into the bar in progress."""
        return self._now(self.at)

    def _now(self, at: int) -> int:
        return self.t0 + at * STEP_MS + 5_000

    def happened(self, market: str) -> np.ndarray:
        """The trades of ``market`` up to the server's time (what REST can serve)."""
        rows = self.trades[market]
        return rows[rows[:, 1] <= self.now_ms]

    def urls(self) -> dict[str, Any]:
        base = f"http://127.0.0.1:{self.port}"
        return {"public": f"{base}/api/v3", "ws": {"spot": f"ws://127.0.0.1:{self.port}/stream"}}

    # -- REST ----------------------------------------------------------------------------
    async def _exchange_info(self, request: web.Request) -> web.Response:
        self.hits["exchangeInfo"] += 1
        symbols = [_symbol_info(s, s[:-4], s[-4:]) for s in self.history]
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.now_ms,
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _time(self, request: web.Request) -> web.Response:
        self.hits["time"] += 1
        return web.json_response({"serverTime": self.now_ms})

    async def _klines(self, request: web.Request) -> web.Response:
        self.hits["klines"] += 1
        limited = self._too_many()
        if limited is not None:
            self.hits["klines_429"] += 1
            return limited
        q = request.query
        rows = self.history.get(q.get("symbol", ""))
        if rows is None:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        limit = min(int(q.get("limit", 500)), 1000)
        served = rows[: self.at + 1]  # up to the bar in progress (as Binance serves it)
        if "startTime" in q:
            served = served[served[:, 0] >= int(q["startTime"])]
        if "endTime" in q:
            served = served[served[:, 0] <= int(q["endTime"])]
        out = [self._row(r, partial=int(r[0]) == int(rows[self.at, 0])) for r in served[:limit]]
        return web.json_response(out)

    def _too_many(self) -> web.Response | None:
        if self.rate_limited <= 0:
            return None
        self.rate_limited -= 1
        self.hits["429"] += 1
        return web.json_response(
            {"code": -1003, "msg": "Too many requests; current limit "
             "of IP is 6000 request weight per 1 MINUTE."},
            status=429,
        )

    async def _agg_trades(self, request: web.Request) -> web.Response:
        self.hits["aggTrades"] += 1
        limited = self._too_many()
        if limited is not None:
            return limited
        q = request.query
        if q.get("symbol", "") not in self.trades:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        rows = self.happened(q["symbol"])
        limit = min(int(q.get("limit", 500)), 1000)
        if "startTime" in q and "endTime" in q and (
            int(q["endTime"]) - int(q["startTime"]) > 3_600_000
        ):
            return web.json_response(
                {"code": -1127, "msg": "More than 1 hours between startTime and endTime."},
                status=400,
            )
        if not {"fromId", "startTime", "endTime"} & set(q):
            rows = rows[-limit:]  # the most recent
        if "fromId" in q:
            rows = rows[rows[:, 0] >= int(q["fromId"])]
        if "startTime" in q:
            rows = rows[rows[:, 1] >= int(q["startTime"])]
        if "endTime" in q:
            rows = rows[rows[:, 1] <= int(q["endTime"])]
        return web.json_response([self._agg(r) for r in rows[:limit]])

    @staticmethod
    def _agg(r: np.ndarray) -> dict[str, Any]:
        i = int(r[0])
        return {"a": i, "p": f"{r[2]:.2f}", "q": f"{r[3]:.5f}", "f": i, "l": i,
                "T": int(r[1]), "m": bool(r[4]), "M": True}

    def _row(self, r: np.ndarray, partial: bool) -> list[Any]:
        o, h, lo, c, v = (float(x) for x in r[1:6])
        if partial:  # the bar in progress: only its first trade so far
            h, lo, c, v = o, o, o, v / 10
        t = int(r[0])
        return [
            t,
            f"{o:.2f}",
            f"{h:.2f}",
            f"{lo:.2f}",
            f"{c:.2f}",
            f"{v:.5f}",
            t + STEP_MS - 1,
            "0",
            1,
            "0",
            "0",
            "0",
        ]

    # -- websocket -----------------------------------------------------------------------
    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            self.hits["ws_refused"] += 1
            return web.Response(status=503)
        self.hits["ws"] += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams: set[str] = set()
        self._sockets.append((ws, streams))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                doc = json.loads(msg.data)
                if doc.get("method") == "SUBSCRIBE":
                    streams.update(doc.get("params", []))
                    await ws.send_str(json.dumps({"result": None, "id": doc.get("id")}))
                    for s in doc.get("params", []):  # the bar in progress, as it stands
                        if "@kline" in s:
                            await self._send(ws, s, self.at, closed=False)
        finally:
            self._sockets = [(w, s) for w, s in self._sockets if w is not ws]
        return ws

    async def _send(self, ws: web.WebSocketResponse, stream: str, i: int, closed: bool) -> None:
        market = stream.split("@")[0].upper()
        rows = self.history.get(market)
        if rows is None or i >= len(rows):
            return
        r = self._row(rows[i], partial=not closed)
        k = {
            "t": r[0],
            "T": r[6],
            "s": market,
            "i": "1m",
            "f": 1,
            "L": 2,
            "o": r[1],
            "c": r[4],
            "h": r[2],
            "l": r[3],
            "v": r[5],
            "n": 1,
            "x": closed,
            "q": "0",
            "V": "0",
            "Q": "0",
            "B": "0",
        }
        await ws.send_str(json.dumps({"e": "kline", "E": self.now_ms, "s": market, "k": k}))

    async def _send_trades(self, ws: web.WebSocketResponse, stream: str, lo: int, hi: int) -> None:
        """The trades of ``stream``'s market with ``lo < T <= hi``, one event each."""
        market = stream.split("@")[0].upper()
        rows = self.trades.get(market)
        if rows is None:
            return
        for r in rows[(rows[:, 1] > lo) & (rows[:, 1] <= hi)]:
            event = {"e": "aggTrade", "E": int(r[1]), "s": market, **self._agg(r)}
            await ws.send_str(json.dumps(event))

    async def _tick(self, n: int) -> None:
        for _ in range(n):
            lo, hi = self.now_ms, self._now(self.at + 1)
            for ws, streams in list(self._sockets):
                for s in list(streams):
                    if "@aggTrade" in s:
                        await self._send_trades(ws, s, lo, hi)
                    else:
                        await self._send(ws, s, self.at, closed=True)
            self.at += 1
            for ws, streams in list(self._sockets):
                for s in list(streams):
                    if "@kline" in s:
                        await self._send(ws, s, self.at, closed=False)

    async def _drop(self) -> None:
        for ws, _ in list(self._sockets):
            await ws.close()
        self._sockets = []

    def tick(self, n: int = 1) -> None:
        """``n`` bars close (each sent to the subscribers, then the next one's first update);
        the trades of each minute that passes go to the trade streams' subscribers."""
        asyncio.run_coroutine_threadsafe(self._tick(n), self._loop).result(5)

    def drop(self) -> None:
        """Close every websocket connection (mid-bar)."""
        asyncio.run_coroutine_threadsafe(self._drop(), self._loop).result(5)

    def streams(self) -> int:
        """Streams subscribed over all websocket connections."""
        return sum(len(s) for _, s in self._sockets)

    def start(self) -> BinanceServer:
        """Serve on a free port of 127.0.0.1 (in a thread); returns self."""
        self._thread.start()

        async def serve() -> int:
            app = web.Application()
            app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
            app.router.add_get("/api/v3/time", self._time)
            app.router.add_get("/api/v3/klines", self._klines)
            app.router.add_get("/api/v3/aggTrades", self._agg_trades)
            app.router.add_get("/stream/{n}", self._ws)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(serve(), self._loop).result(5)
        return self

    def stop(self) -> None:
        """Stop serving."""

        async def down() -> None:
            await self._drop()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(down(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
