"""The ccxt adapter: a spot account on any exchange ccxt supports, behind the broker
interface. Orders go under the book's client id (ccxt's ``clientOrderId`` parameter, which
each exchange class maps to its own field), are read back by it, and every ccxt error is
one of the three outcomes: a network error or timeout is *unknown*
(:class:`~connectors.brokers.base.BrokerUnavailable`); an order the venue refuses
(``InvalidOrder``, ``InsufficientFunds``) is *rejected*; ``OrderNotFound`` is a definitive
"no such order"; anything else (bad keys, ...) is a :class:`~connectors.brokers.base.BrokerError`.

``sandbox=True`` switches to the exchange's testnet (ccxt's ``set_sandbox_mode``, the first
call on the exchange) and fails when the exchange has none: it never falls back to
production. ``config`` is passed to the ccxt exchange as it is (``urls``, ``options``,
``timeout``: ccxt deep-merges it over the exchange's own description).

Spot positions are the account's total balance of each symbol's base currency; fees are
counted in the quote currency (a fee paid in another currency is converted at the fill
price and noted in :attr:`CcxtBroker.notes`).

>>> CcxtBroker.status_of({"status": "open", "filled": 0.5})
'partially_filled'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from connectors.brokers.base import Broker, BrokerError, BrokerUnavailable, Submitted
from qmtl.book.model import BrokerOrder, FillEvent, Instrument, OrderRequest, OrderUpdate

T = TypeVar("T")

SPOT_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
"""ccxt options of a spot account (markets of other kinds are not loaded)."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


class CcxtBroker(Broker):
    """A ccxt spot account (see the module docstring). ``symbols`` are the ones the book
    trades (their positions are reported; ``quote`` is the cash currency)."""

    name = "ccxt"

    def __init__(
        self,
        exchange: str,
        symbols: Iterable[str],
        api_key: str = "",
        secret: str = "",
        sandbox: bool = False,
        config: dict[str, Any] | None = None,
        quote: str = "USDT",
    ) -> None:
        import ccxt

        self.ccxt = ccxt
        cls = getattr(ccxt, exchange, None)
        if cls is None or not isinstance(cls, type):
            raise BrokerError(f"ccxt has no exchange {exchange!r}")
        cfg = _merge(
            {
                "apiKey": api_key,
                "secret": secret,
                "enableRateLimit": True,
                "options": dict(SPOT_OPTIONS),
            },
            config or {},
        )
        self.ex = cls(cfg)
        self.exchange, self.quote = exchange, quote
        self.symbols = tuple(symbols)
        if sandbox:
            why = f"{exchange} has no sandbox (testnet) in ccxt: refusing to run on production"
            if not (self.ex.urls or {}).get("test"):
                raise BrokerError(why)
            try:
                self.ex.set_sandbox_mode(True)
            except Exception as e:  # ccxt raises NotSupported, or worse on a partial testnet
                raise BrokerError(f"{why} ({type(e).__name__}: {e})") from e
        self.sandbox = sandbox
        self._seen: dict[str, str] = {}
        self.notes: list[str] = []

    def _call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        try:
            return fn(*args, **kw)
        except self.ccxt.NetworkError as e:
            raise BrokerUnavailable(f"{self.exchange}: {type(e).__name__}: {e}") from e
        except self.ccxt.OrderNotFound:
            raise
        except self.ccxt.InvalidOrder:
            raise
        except self.ccxt.InsufficientFunds:
            raise
        except self.ccxt.BaseError as e:
            raise BrokerError(f"{self.exchange}: {type(e).__name__}: {e}") from e

    def _markets(self) -> dict[str, Any]:
        return self._call(self.ex.load_markets)

    # -- the interface ---------------------------------------------------------------
    def instruments(self, symbols: Iterable[str]) -> dict[str, Instrument]:
        """Lot, tick and minimums from the exchange's markets."""
        markets = self._markets()
        out = {}
        for s in symbols:
            m = markets.get(s)
            if m is None:
                raise BrokerError(f"{self.exchange} has no market {s!r}")
            prec, lim = m.get("precision") or {}, m.get("limits") or {}

            def step(p: Any) -> float:
                if p is None:
                    return 0.0
                if self.ex.precisionMode == self.ccxt.DECIMAL_PLACES:
                    return 10.0 ** -float(p)
                return float(p) if self.ex.precisionMode == self.ccxt.TICK_SIZE else 0.0

            out[s] = Instrument(
                s,
                lot=step(prec.get("amount")),
                tick=step(prec.get("price")),
                min_qty=float((lim.get("amount") or {}).get("min") or 0.0),
                min_notional=float((lim.get("cost") or {}).get("min") or 0.0),
            )
        return out

    def submit(self, req: OrderRequest) -> Submitted:
        """Create the order under its client id."""
        self._markets()
        params: dict[str, Any] = {"clientOrderId": req.client_id}
        if req.type == "limit":
            params["timeInForce"] = req.tif
        amount = float(self.ex.amount_to_precision(req.symbol, abs(req.qty)))
        price = (
            float(self.ex.price_to_precision(req.symbol, req.limit_price))
            if req.type == "limit" and req.limit_price
            else None
        )
        try:
            o = self._call(
                self.ex.create_order, req.symbol, req.type, req.side, amount, price, params
            )
        except (self.ccxt.InvalidOrder, self.ccxt.InsufficientFunds) as e:
            return Submitted("rejected", reason=f"{type(e).__name__}: {e}")
        if o.get("status") == "rejected":
            return Submitted("rejected", str(o.get("id") or ""), "rejected by the exchange")
        return Submitted("accepted", str(o.get("id") or ""))

    def cancel(self, client_id: str, symbol: str) -> bool:
        """Cancel by client id."""
        try:
            self._call(self.ex.cancel_order, None, symbol, {"clientOrderId": client_id})
        except self.ccxt.OrderNotFound:
            return False
        return True

    def _fetch(self, client_id: str, symbol: str) -> dict[str, Any] | None:
        try:
            return self._call(self.ex.fetch_order, None, symbol, {"clientOrderId": client_id})
        except self.ccxt.OrderNotFound:
            return None

    @staticmethod
    def status_of(o: dict[str, Any]) -> str:
        """The book's status of a ccxt order.

        >>> CcxtBroker.status_of({"status": "canceled"}), CcxtBroker.status_of({"status": "closed"})
        ('cancelled', 'filled')
        """
        s = o.get("status")
        if s == "open":
            return "partially_filled" if float(o.get("filled") or 0.0) > 0 else "accepted"
        return {
            "closed": "filled",
            "canceled": "cancelled",
            "expired": "expired",
            "rejected": "rejected",
        }.get(str(s), "accepted")

    def _order(self, o: dict[str, Any]) -> BrokerOrder:
        sign = 1.0 if o.get("side") == "buy" else -1.0
        return BrokerOrder(
            str(o.get("clientOrderId") or ""),
            str(o["symbol"]),
            sign * float(o.get("amount") or 0.0),
            sign * float(o.get("filled") or 0.0),
            self.status_of(o),  # type: ignore[arg-type]
            str(o.get("id") or ""),
        )

    def order(self, client_id: str, symbol: str) -> BrokerOrder | None:
        """One order by client id."""
        o = self._fetch(client_id, symbol)
        return None if o is None else self._order(o)

    def open_orders(self) -> list[BrokerOrder]:
        """All open orders of the account."""
        self._markets()
        return [self._order(o) for o in self._call(self.ex.fetch_open_orders)]

    def _balance(self) -> dict[str, float]:
        bal = self._call(self.ex.fetch_balance)
        return {c: float(v) for c, v in (bal.get("total") or {}).items() if v is not None}

    def positions(self) -> dict[str, float]:
        """The base currency's total balance of each symbol the book trades."""
        markets, total = self._markets(), self._balance()
        out = {}
        for s in self.symbols:
            base = markets[s]["base"] if s in markets else s.split("/")[0]
            if total.get(base):
                out[s] = total[base]
        return out

    def balances(self) -> dict[str, float]:
        """Total balance per currency."""
        return self._balance()

    def poll(self, watching: Sequence[tuple[str, str]]) -> list[OrderUpdate | FillEvent]:
        """Each watched order's fills (its trades) and then its status, when changed."""
        out: list[OrderUpdate | FillEvent] = []
        for cid, symbol in watching:
            o = self._fetch(cid, symbol)
            if o is None:
                continue
            if float(o.get("filled") or 0.0) > 0:
                trades = self._call(
                    self.ex.fetch_my_trades, symbol, None, None, {"orderId": o["id"]}
                )
                for t in trades:
                    out.append(self._fill(cid, t))
            status = self.status_of(o)
            if self._seen.get(cid) != status:
                self._seen[cid] = status
                out.append(OrderUpdate(cid, status, "", str(o.get("id") or "")))  # type: ignore[arg-type]
        return out

    def _fill(self, cid: str, t: dict[str, Any]) -> FillEvent:
        sign = 1.0 if t.get("side") == "buy" else -1.0
        price = float(t["price"])
        fee = t.get("fee") or {}
        cost = float(fee.get("cost") or 0.0)
        if cost and fee.get("currency") not in (None, self.quote):
            self.notes.append(
                f"trade {t['id']}: fee {cost:g} {fee['currency']} counted as "
                f"{cost * price:g} {self.quote}"
            )
            cost *= price
        return FillEvent(
            cid,
            str(t["id"]),
            sign * float(t["amount"]),
            price,
            cost,
            int(t.get("timestamp") or 0) * 1_000_000,
        )
