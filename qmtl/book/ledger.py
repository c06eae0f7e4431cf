"""The book's ledger as a fold of its events: positions, cash, orders, fills, each
strategy's attributed position, cash and fees, the targets and world weights in force, the
last prices and the trading state. The shell stores an event, then applies it here, then
acts on it; a restart applies the stored events again and is where it was.

Events are plain dicts with a ``kind``:

- ``adopt``: the broker's positions, cash and open orders become the ledger's (at first
  start or by ``qmtl world reconcile --adopt``); what no strategy holds is the account's
  own (``external``), which the book holds and never trades;
- ``target``: a strategy's target weights (``strategy``, ``seq``, ``weights``, ``prices``);
- ``weights``: the world's weights of its active strategies (``weights``), the strategies
  whose activation is not known now (``held``: a lost connection, a stale or frozen world;
  their parts are held as they are), ``known``: False when the world is gone or unknown;
- ``order`` (an :class:`~qmtl.book.model.OrderRequest`'s fields, stored as ``new``),
  ``denied`` (the same, with ``reason``), ``status``, ``fill``;
- ``state``: the trading state (``state``, ``reason``, ``who``);
- ``mark``: prices (``prices``, ``ts``): equity, peak and each strategy's model P&L;
- ``note``: something said for the audit (a reconciliation, an unknown outcome), no change.

>>> b = Ledger("w")
>>> b.apply({"kind": "adopt", "cash": 1000.0, "positions": {}})
'applied'
>>> b.apply({"kind": "order", "client_id": "c1", "symbol": "X", "qty": 2.0,
...          "ref_price": 10.0, "shares": [["a", 3.0], ["b", -1.0]], "seq": 1})
'applied'
>>> b.apply({"kind": "fill", "client_id": "c1", "trade_id": "t1", "qty": 2.0,
...          "price": 10.0, "fee": 0.02})
'applied'
>>> b.positions, round(b.cash, 2), sorted(b.strategy_pos.items())
({'X': 2.0}, 979.98, [(('a', 'X'), 3.0), (('b', 'X'), -1.0)])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from qmtl.book.attribution import allocate
from qmtl.book.model import FillEvent, OrderRequest
from qmtl.book.orders import Order, Outcome, apply_fill, apply_status
from qmtl.book.reconcile import Snapshot


@dataclass
class Ledger:
    """One world account's book (see the module docstring)."""

    world: str
    account: str = "main"
    currency: str = "USDT"
    cash: float = 0.0
    positions: dict[str, float] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    fills: list[FillEvent] = field(default_factory=list)
    strategy_pos: dict[tuple[str, str], float] = field(default_factory=dict)
    strategy_cash: dict[str, float] = field(default_factory=dict)
    strategy_fees: dict[str, float] = field(default_factory=dict)
    model_pnl: dict[str, float] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    targets: dict[str, dict[str, float]] = field(default_factory=dict)
    target_seq: dict[str, int] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    world_known: bool = True
    held: set[str] = field(default_factory=set)
    prices: dict[str, float] = field(default_factory=dict)
    state: str = "ACTIVE"
    state_reason: str = ""
    peak: float = 0.0
    day_start: float = 0.0
    day: int = -1
    adopted: bool = False
    external: dict[str, float] = field(default_factory=dict)
    last_denied: dict[str, tuple[float, str]] = field(default_factory=dict)
    open_ids: dict[str, None] = field(default_factory=dict)  # open orders, in order
    indexed: bool = False  # open_ids kept by apply (a ledger built by hand has none)
    anomalies: list[str] = field(default_factory=list)

    # -- reading ---------------------------------------------------------------------
    def equity(self) -> float:
        """Cash plus positions at the last prices.

        >>> Ledger("w", cash=10.0, positions={"X": 2.0}, prices={"X": 3.0}).equity()
        16.0
        """
        return self.cash + math.fsum(q * self.prices.get(s, 0.0) for s, q in self.positions.items())

    def open_qty(self) -> dict[str, float]:
        """Remaining signed quantity of open orders per symbol.

        >>> Ledger("w", orders={"c": Order("c", "X", 2.0, filled=0.5, status="accepted")}
        ...        ).open_qty()
        {'X': 1.5}
        """
        out: dict[str, float] = {}
        for o in self._open():
            out[o.symbol] = out.get(o.symbol, 0.0) + o.remaining
        return out

    def open_orders(self) -> list[Order]:
        """The orders that may still fill, oldest first.

        >>> Ledger("w", orders={"c": Order("c", "X", 1.0)}).open_orders()[0].client_id
        'c'
        """
        return self._open()

    def _open(self) -> list[Order]:
        if not self.indexed:  # a ledger built by hand (doctests): look at every order
            return [o for o in self.orders.values() if o.open]
        return [self.orders[c] for c in self.open_ids]

    def strategy_open(self) -> dict[tuple[str, str], float]:
        """Each strategy's part of the open orders, by its share.

        >>> Ledger("w", orders={"c": Order("c", "X", 2.0, status="accepted",
        ...                               shares=(("a", 4.0),))}).strategy_open()
        {('a', 'X'): 2.0}
        """
        out: dict[tuple[str, str], float] = {}
        for o in self._open():
            total = math.fsum(g for _, g in o.shares)
            if total:
                for s, g in o.shares:
                    k = (s, o.symbol)
                    out[k] = out.get(k, 0.0) + o.remaining * g / total
        return out

    def snapshot(self) -> Snapshot:
        """Positions, open orders and cash, for :func:`~qmtl.book.reconcile.compare`."""
        return Snapshot(
            {s: q for s, q in self.positions.items() if q},
            {o.client_id: (o.symbol, o.remaining) for o in self._open() if o.status != "new"},
            {self.currency: self.cash},
        )

    def strategy_pnl(self, sid: str) -> float:
        """A strategy's realized P&L from its attributed fills and fees, marked at the last
        prices."""
        held = math.fsum(
            q * self.prices.get(sym, 0.0) for (s, sym), q in self.strategy_pos.items() if s == sid
        )
        return self.strategy_cash.get(sid, 0.0) + held

    # -- applying --------------------------------------------------------------------
    def apply(self, ev: dict[str, Any]) -> Outcome:
        """Apply one event; the outcome says whether it changed anything."""
        if not self.indexed:
            self.open_ids = {c: None for c, o in self.orders.items() if o.open}
            self.indexed = True
        out = self._apply(ev)
        cid = ev.get("client_id")
        if ev["kind"] == "adopt":
            self.open_ids = {c: None for c, o in self.orders.items() if o.open}
        elif cid is not None and cid in self.orders:
            if self.orders[cid].open:
                self.open_ids[cid] = None
            else:
                self.open_ids.pop(cid, None)
        return out

    def _apply(self, ev: dict[str, Any]) -> Outcome:
        kind = ev["kind"]
        if kind == "adopt":
            self.cash = float(ev["cash"])
            self.positions = {s: float(q) for s, q in ev["positions"].items() if q}
            for o in self.orders.values():
                if o.open and o.client_id not in ev.get("open_orders", {}):
                    o.status, o.reason = "cancelled", "not at the broker when adopted"
            held: dict[str, float] = {}
            for (_sid, sym), q in self.strategy_pos.items():
                held[sym] = held.get(sym, 0.0) + q
            self.external = {
                s: q - held.get(s, 0.0)
                for s, q in self.positions.items()
                if abs(q - held.get(s, 0.0)) > 1e-12
            }
            self.adopted = True
            self.state_reason = ""
            return "applied"
        if kind == "target":
            self.targets[ev["strategy"]] = {s: float(w) for s, w in ev["weights"].items()}
            self.target_seq[ev["strategy"]] = int(ev.get("seq", 0))
            self._mark(ev.get("prices", {}), ev.get("ts", 0))
            return "applied"
        if kind == "weights":
            self.weights = {s: float(w) for s, w in ev["weights"].items()}
            self.held = set(ev.get("held", ()))
            self.world_known = bool(ev.get("known", True))
            return "applied"
        if kind == "note":
            return "applied"
        if kind == "mark":
            self._mark(ev["prices"], ev.get("ts", 0))
            return "applied"
        if kind == "state":
            self.state, self.state_reason = ev["state"], ev.get("reason", "")
            return "applied"
        if kind in ("order", "denied"):
            req = request_of(ev)
            if req.client_id in self.orders:
                return "duplicate"
            order = Order.of(req, ts=int(ev.get("ts", 0)))
            if kind == "denied":
                order.status, order.reason = "denied", ev.get("reason", "")
                self.last_denied[req.symbol] = (req.qty, order.reason)
            else:
                self.last_denied.pop(req.symbol, None)
            self.orders[req.client_id] = order
            self.seq[req.symbol] = max(self.seq.get(req.symbol, 0), req.seq)
            return "applied"
        order = self.orders.get(ev["client_id"])
        if order is None:
            self.anomalies.append(f"{kind} for an order the book does not know: {ev['client_id']}")
            return "illegal"
        if kind == "status":
            if ev.get("broker_id"):
                order.broker_id = ev["broker_id"]
            return apply_status(order, ev["status"], ev.get("reason", ""))
        if kind == "fill":
            return self._fill(
                order,
                FillEvent(
                    ev["client_id"],
                    str(ev["trade_id"]),
                    float(ev["qty"]),
                    float(ev["price"]),
                    float(ev.get("fee", 0.0)),
                    int(ev.get("ts", 0)),
                ),
            )
        raise ValueError(f"unknown ledger event kind {kind!r}")

    def _fill(self, order: Order, f: FillEvent) -> Outcome:
        outcome = apply_fill(order, f)
        if outcome == "overfill":
            self.anomalies.append(
                f"overfill of {order.client_id}: trade {f.trade_id} of "
                f"{f.qty:g} on {order.filled:g} of {order.qty:g}"
            )
        if outcome != "applied":
            return outcome
        self.fills.append(f)
        self.positions[order.symbol] = self.positions.get(order.symbol, 0.0) + f.qty
        self.cash -= f.qty * f.price + f.fee
        for sid, q, fee in allocate(f.qty, f.fee, order.shares):
            k = (sid, order.symbol)
            self.strategy_pos[k] = self.strategy_pos.get(k, 0.0) + q
            self.strategy_cash[sid] = self.strategy_cash.get(sid, 0.0) - q * f.price - fee
            self.strategy_fees[sid] = self.strategy_fees.get(sid, 0.0) + fee
        return outcome

    def _mark(self, prices: dict[str, float], ts: int) -> None:
        """New prices: each strategy's model P&L (its ideal position, world weight x target
        weight x equity / price, from the last price to this one), then the equity's peak
        and the day's first equity."""
        equity = self.equity()
        for sid, tw in self.targets.items():
            w = self.weights.get(sid, 0.0)
            for sym, p in prices.items():
                old = self.prices.get(sym)
                if old and sym in tw:
                    self.model_pnl[sid] = self.model_pnl.get(sid, 0.0) + w * tw[
                        sym
                    ] * equity / old * (p - old)
        self.prices.update({s: float(p) for s, p in prices.items()})
        equity = self.equity()
        self.peak = max(self.peak, equity)
        day = int(ts) // 86_400_000_000_000
        if day != self.day:
            self.day, self.day_start = day, equity


def request_of(ev: dict[str, Any]) -> OrderRequest:
    """The order request an ``order`` or ``denied`` event holds.

    >>> request_of({"client_id": "c", "symbol": "X", "qty": 1, "ref_price": 2}).qty
    1.0
    """
    return OrderRequest(
        str(ev["client_id"]),
        str(ev["symbol"]),
        float(ev["qty"]),
        float(ev["ref_price"]),
        ev.get("type", "market"),
        ev.get("tif", "GTC"),
        None if ev.get("limit_price") is None else float(ev["limit_price"]),
        tuple((str(s), float(g)) for s, g in ev.get("shares", ())),
        int(ev.get("seq", 0)),
    )


def request_event(req: OrderRequest, kind: str = "order", **extra: Any) -> dict[str, Any]:
    """The event that stores ``req`` (the inverse of :func:`request_of`).

    >>> r = OrderRequest("c", "X", 1.0, 2.0, shares=(("a", 1.0),))
    >>> request_of(request_event(r)) == r
    True
    """
    return {
        "kind": kind,
        "client_id": req.client_id,
        "symbol": req.symbol,
        "qty": req.qty,
        "ref_price": req.ref_price,
        "type": req.type,
        "tif": req.tif,
        "limit_price": req.limit_price,
        "shares": [list(s) for s in req.shares],
        "seq": req.seq,
        **extra,
    }
