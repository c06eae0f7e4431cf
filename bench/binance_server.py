"""A local exchange that answers as Binance's spot REST API documents (the bodies of its
examples: exchangeInfo, order, openOrders, account, myTrades, time), so the ccxt adapter is
tested and measured through ccxt itself with no exchange reachable (the adapter's tests and
``bench/book.py``). It keeps one account's balances and orders; market orders fill at
``price`` (``partial``: 40% now, the rest left open), limit orders rest until filled by
:meth:`Exchange.fill`. Faults for the tests: ``reject`` (the next order gets Binance's
insufficient-balance error), ``drop`` (the next order is taken, then the connection is
closed with no answer), ``hang`` (the next order is taken, then the answer waits until
``release`` is set)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

SYMBOL = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "baseAssetPrecision": 8,
    "quoteAsset": "USDT",
    "quotePrecision": 8,
    "quoteAssetPrecision": 8,
    "baseCommissionPrecision": 8,
    "quoteCommissionPrecision": 8,
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
    "icebergAllowed": True,
    "ocoAllowed": True,
    "otoAllowed": True,
    "quoteOrderQtyMarketAllowed": True,
    "allowTrailingStop": False,
    "cancelReplaceAllowed": True,
    "isSpotTradingAllowed": True,
    "isMarginTradingAllowed": False,
    "filters": [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01000000",
            "maxPrice": "1000000.00000000",
            "tickSize": "0.01000000",
        },
        {
            "filterType": "LOT_SIZE",
            "minQty": "0.00001000",
            "maxQty": "9000.00000000",
            "stepSize": "0.00001000",
        },
        {
            "filterType": "NOTIONAL",
            "minNotional": "5.00000000",
            "applyMinToMarket": True,
            "maxNotional": "9000000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    ],
    "permissions": [],
    "permissionSets": [["SPOT"]],
    "defaultSelfTradePreventionMode": "NONE",
    "allowedSelfTradePreventionModes": ["NONE"],
}


class Exchange:
    """The account and the faults (see the module docstring)."""

    def __init__(self, balances: dict[str, float], price: float = 100.0) -> None:
        self.balances = dict(balances)
        self.price = price
        self.orders: dict[str, dict[str, Any]] = {}
        self.trades: list[dict[str, Any]] = []
        self.posts: list[str] = []
        self.partial = self.reject = self.drop = self.hang = False
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._next = 1000

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _trade(self, o: dict[str, Any], qty: float, price: float) -> None:
        buy = o["side"] == "BUY"
        fee = qty * price * 0.001
        self.balances["BTC"] = self.balances.get("BTC", 0.0) + (qty if buy else -qty)
        self.balances["USDT"] = (
            self.balances.get("USDT", 0.0) - (qty * price if buy else -qty * price) - fee
        )
        o["executedQty"] += qty
        o["cummulativeQuoteQty"] += qty * price
        o["status"] = "FILLED" if o["executedQty"] >= o["origQty"] - 1e-12 else "PARTIALLY_FILLED"
        self.trades.append(
            {
                "symbol": "BTCUSDT",
                "id": self._id(),
                "orderId": o["orderId"],
                "orderListId": -1,
                "price": f"{price:.8f}",
                "qty": f"{qty:.8f}",
                "quoteQty": f"{qty * price:.8f}",
                "commission": f"{fee:.8f}",
                "commissionAsset": "USDT",
                "time": int(time.time() * 1e3),
                "isBuyer": buy,
                "isMaker": False,
                "isBestMatch": True,
            }
        )

    def fill(self, client_id: str, qty: float | None = None) -> None:
        """Fill a resting order (its rest by default) at its price."""
        with self.lock:
            o = self.orders[client_id]
            left = o["origQty"] - o["executedQty"]
            self._trade(o, left if qty is None else qty, o["price"] or self.price)

    def place(self, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            cid = p["newClientOrderId"]
            self.posts.append(cid)
            if cid in self.orders:
                return 400, {"code": -2010, "msg": "Duplicate order sent."}
            if self.reject:
                self.reject = False
                return 400, {
                    "code": -2010,
                    "msg": "Account has insufficient balance for requested action.",
                }
            qty = float(p["quantity"])
            o = {
                "symbol": "BTCUSDT",
                "orderId": self._id(),
                "orderListId": -1,
                "clientOrderId": cid,
                "transactTime": int(time.time() * 1e3),
                "price": float(p.get("price", 0.0)),
                "origQty": qty,
                "executedQty": 0.0,
                "cummulativeQuoteQty": 0.0,
                "status": "NEW",
                "timeInForce": p.get("timeInForce", "GTC"),
                "type": p["type"],
                "side": p["side"],
                "workingTime": int(time.time() * 1e3),
                "selfTradePreventionMode": "NONE",
            }
            self.orders[cid] = o
            if p["type"] == "MARKET":
                self._trade(o, qty * 0.4 if self.partial else qty, self.price)
            return 200, {**self.render(o), "fills": []}

    @staticmethod
    def render(o: dict[str, Any]) -> dict[str, Any]:
        return {
            **o,
            "price": f"{o['price']:.8f}",
            "origQty": f"{o['origQty']:.8f}",
            "executedQty": f"{o['executedQty']:.8f}",
            "cummulativeQuoteQty": f"{o['cummulativeQuoteQty']:.8f}",
            "stopPrice": "0.00000000",
            "icebergQty": "0.00000000",
            "time": o["transactTime"],
            "updateTime": o["transactTime"],
            "isWorking": True,
            "origQuoteOrderQty": "0.00000000",
        }


def handler(ex: Exchange) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def _params(self) -> dict[str, str]:
            url = urlparse(self.path)
            p = dict(parse_qsl(url.query))
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                p.update(parse_qsl(self.rfile.read(n).decode()))
            return p

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            path, p = urlparse(self.path).path, self._params()
            if path == "/api/v3/time":
                return self._send(200, {"serverTime": int(time.time() * 1e3)})
            if path == "/api/v3/exchangeInfo":
                return self._send(
                    200,
                    {
                        "timezone": "UTC",
                        "serverTime": int(time.time() * 1e3),
                        "rateLimits": [],
                        "exchangeFilters": [],
                        "symbols": [SYMBOL],
                    },
                )
            if path == "/api/v3/order" and method == "POST":
                status, body = ex.place(p)
                if ex.drop and status == 200:
                    ex.drop = False
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if ex.hang and status == 200:
                    ex.hang = False
                    ex.release.wait(60)
                return self._send(status, body)
            if path == "/api/v3/order":
                cid = p.get("origClientOrderId", "")
                o = ex.orders.get(cid)
                if o is None:
                    return self._send(400, {"code": -2013, "msg": "Order does not exist."})
                if method == "DELETE":
                    if o["status"] not in ("NEW", "PARTIALLY_FILLED"):
                        return self._send(400, {"code": -2011, "msg": "Unknown order sent."})
                    o["status"] = "CANCELED"
                return self._send(200, ex.render(o))
            if path == "/api/v3/openOrders":
                return self._send(
                    200,
                    [
                        ex.render(o)
                        for o in ex.orders.values()
                        if o["status"] in ("NEW", "PARTIALLY_FILLED")
                    ],
                )
            if path == "/api/v3/account":
                return self._send(
                    200,
                    {
                        "makerCommission": 10,
                        "takerCommission": 10,
                        "buyerCommission": 0,
                        "sellerCommission": 0,
                        "canTrade": True,
                        "canWithdraw": True,
                        "canDeposit": True,
                        "brokered": False,
                        "requireSelfTradePrevention": False,
                        "preventSor": False,
                        "updateTime": int(time.time() * 1e3),
                        "accountType": "SPOT",
                        "permissions": ["SPOT"],
                        "uid": 1,
                        "balances": [
                            {"asset": a, "free": f"{v:.8f}", "locked": "0.00000000"}
                            for a, v in ex.balances.items()
                        ],
                    },
                )
            if path == "/api/v3/myTrades":
                oid = p.get("orderId")
                return self._send(
                    200, [t for t in ex.trades if oid is None or str(t["orderId"]) == oid]
                )
            return self._send(404, {"code": -1000, "msg": f"no route {method} {path}"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


def serve(ex: Exchange) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``ex`` on a free local port in a thread; returns the server and its base URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler(ex))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def urls(base: str) -> dict[str, Any]:
    """ccxt's ``urls`` override that points Binance's spot API (and its testnet) here."""
    api = {"public": f"{base}/api/v3", "private": f"{base}/api/v3", "v1": f"{base}/api/v1"}
    return {"api": api, "test": api}
