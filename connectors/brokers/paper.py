"""The paper broker behind the broker interface: it fills the book's orders by the rule a
backtest can be told to use (:class:`dataflows.execution.Execution`: the next bar's open by
default, or the deciding bar's close), with the same slippage and fee functions
(:func:`~dataflows.execution.fill_price`, :func:`~dataflows.execution.fee`), so a paper
account fills what the backtest assumed. Limit orders fill at the limit when the bar's range
reaches it (IOC ones that do not are expired). Its state (cash, positions, orders) is kept in
a JSON file when given one, written whole and renamed into place after every change, so it
outlives the book's process.

>>> b = PaperBroker(cash=1000.0, fee_bps=10.0)
>>> b.submit(OrderRequest("c1", "X", 2.0, ref_price=10.0)).status
'accepted'
>>> b.on_bar("X", ts=1, open_=10.0, close=10.5, decided=0)
1
>>> b.positions(), round(b.balances()["USDT"], 4)
({'X': 2.0}, 979.98)
>>> [type(e).__name__ for e in b.poll([("c1", "X")])]
['OrderUpdate', 'FillEvent']
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from connectors.brokers.base import Broker, BrokerError, Submitted
from dataflows.execution import Execution, fee, fill_price
from qmtl.book.model import BrokerOrder, FillEvent, Instrument, OrderRequest, OrderUpdate

_REQ = ("client_id", "symbol", "qty", "ref_price", "type", "tif", "limit_price")


class PaperBroker(Broker):
    """A simulated account (see the module docstring). ``decided`` of :meth:`on_bar` is the
    bar an order was decided on: rule ``next_open`` fills orders decided before the bar at
    its open, rule ``close`` fills orders decided at it at its close."""

    name = "paper"

    def __init__(
        self,
        cash: float = 0.0,
        currency: str = "USDT",
        fee_bps: float = 0.0,
        slippage_bps: float = 0.0,
        execution: Execution | None = None,
        instruments: dict[str, Instrument] | None = None,
        state: str | Path | None = None,
    ) -> None:
        if fee_bps < 0 or slippage_bps < 0:
            raise BrokerError(f"fee and slippage must be >= 0 bp, got {fee_bps}, {slippage_bps}")
        self.currency = currency
        self.fee_bps, self.slip = fee_bps, slippage_bps / 1e4
        self.rule = (execution or Execution(rule="next_open")).rule
        self._instruments = dict(instruments or {})
        self.path = Path(state) if state else None
        self.cash = float(cash)
        self.pos: dict[str, float] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.news: list[dict[str, Any]] = []
        if self.path is not None and self.path.exists():
            saved = json.loads(self.path.read_text())
            self.cash, self.pos, self.orders = saved["cash"], saved["pos"], saved["orders"]
            self.news = saved["news"]

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"cash": self.cash, "pos": self.pos, "orders": self.orders, "news": self.news}
            )
        )
        os.replace(tmp, self.path)

    # -- the interface ---------------------------------------------------------------
    def instruments(self, symbols: Iterable[str]) -> dict[str, Instrument]:
        """The instruments it was given (others: no lot, no minimum)."""
        return {s: self._instruments.get(s, Instrument(s)) for s in symbols}

    def submit(self, req: OrderRequest) -> Submitted:
        """Take an order; a client id it has already is a duplicate and is rejected."""
        if req.client_id in self.orders:
            return Submitted("rejected", reason=f"duplicate client order id {req.client_id}")
        inst = self._instruments.get(req.symbol)
        if inst is not None and inst.min_notional and req.notional < inst.min_notional:
            return Submitted(
                "rejected",
                reason=f"notional {req.notional:g} under the minimum {inst.min_notional:g}",
            )
        self.orders[req.client_id] = {
            "req": {f: getattr(req, f) for f in _REQ},
            "filled": 0.0,
            "status": "accepted",
            "trades": 0,
        }
        self.news.append({"u": [req.client_id, "accepted", ""]})
        self._save()
        return Submitted("accepted", broker_id=req.client_id)

    def cancel(self, client_id: str, symbol: str) -> bool:
        """Cancel an open order."""
        o = self.orders.get(client_id)
        if o is None or o["status"] not in ("accepted", "partially_filled"):
            return False
        o["status"] = "cancelled"
        self.news.append({"u": [client_id, "cancelled", "cancelled by the book"]})
        self._save()
        return True

    def order(self, client_id: str, symbol: str) -> BrokerOrder | None:
        """One order by client id."""
        o = self.orders.get(client_id)
        if o is None:
            return None
        return BrokerOrder(
            client_id, o["req"]["symbol"], o["req"]["qty"], o["filled"], o["status"], client_id
        )

    def open_orders(self) -> list[BrokerOrder]:
        """The open orders."""
        return [
            b
            for c in self.orders
            if (b := self.order(c, "")) is not None and b.status in ("accepted", "partially_filled")
        ]

    def positions(self) -> dict[str, float]:
        """Quantity held per symbol."""
        return {s: q for s, q in self.pos.items() if q}

    def balances(self) -> dict[str, float]:
        """Cash."""
        return {self.currency: self.cash}

    def poll(self, watching: Sequence[tuple[str, str]]) -> list[OrderUpdate | FillEvent]:
        """What happened since the last poll (to every order: the paper broker has one
        client, the book)."""
        out: list[OrderUpdate | FillEvent] = []
        for n in self.news:
            if "u" in n:
                out.append(OrderUpdate(*n["u"]))
            else:
                out.append(FillEvent(*n["f"]))
        self.news = []
        self._save()
        return out

    # -- the market ------------------------------------------------------------------
    def on_bar(
        self,
        symbol: str,
        ts: int,
        open_: float,
        close: float,
        high: float | None = None,
        low: float | None = None,
        decided: int = -1,
    ) -> int:
        """Fill ``symbol``'s open orders on one bar (see the class docstring); returns how
        many filled. ``decided`` is the ts orders submitted since the last bar were decided
        on (default: before this bar)."""
        high = max(open_, close) if high is None else high
        low = min(open_, close) if low is None else low
        done = 0
        for cid, o in self.orders.items():
            req = o["req"]
            if req["symbol"] != symbol or o["status"] not in ("accepted", "partially_filled"):
                continue
            o.setdefault("decided", decided if decided >= 0 else ts - 1)
            if self.rule == "next_open":
                if o["decided"] >= ts:
                    continue
                ref = open_
            else:
                if o["decided"] > ts:
                    continue
                ref = close
            qty = req["qty"] - o["filled"]
            price = fill_price(ref, qty, self.slip)
            if req["type"] == "limit":
                lim = req["limit_price"]
                reach = low <= lim if qty > 0 else high >= lim
                if not reach:
                    if req["tif"] == "IOC":
                        o["status"] = "expired"
                        self.news.append({"u": [cid, "expired", "limit not reached"]})
                    continue
                price = min(price, lim) if qty > 0 else max(price, lim)
            o["trades"] += 1
            o["filled"] = req["qty"]
            o["status"] = "filled"
            cost = fee(qty, price, self.fee_bps)
            self.pos[symbol] = self.pos.get(symbol, 0.0) + qty
            self.cash -= qty * price + cost
            self.news.append({"f": [cid, f"{cid}-{o['trades']}", qty, price, cost, ts]})
            done += 1
        self._save()
        return done
