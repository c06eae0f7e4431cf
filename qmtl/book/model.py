"""What the book and a broker exchange: an instrument's trading rules, an order request,
and the broker's order updates and fills (every quantity is signed: positive buys).

>>> r = OrderRequest("qm1", "BTC/USDT", 0.5, ref_price=100.0)
>>> r.side, r.notional
('buy', 50.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

OrderType = Literal["market", "limit"]
TimeInForce = Literal["GTC", "IOC"]
Status = Literal[
    "new",
    "submitted",
    "accepted",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
    "denied",
]
STATUSES: tuple[str, ...] = (
    "new",
    "submitted",
    "accepted",
    "partially_filled",
    "filled",
    "cancelled",
    "rejected",
    "expired",
    "denied",
)
"""Every order status: ``new`` is stored before the order is sent, ``denied`` by the risk
engine (never sent)."""
OPEN: frozenset[str] = frozenset({"new", "submitted", "accepted", "partially_filled"})
"""The statuses of an order that may still fill."""


@dataclass(frozen=True)
class Instrument:
    """A symbol's trading rules: quantity step (``lot``), price step (``tick``), minimum
    quantity and minimum notional (0: none).

    >>> Instrument("BTC/USDT", lot=0.001, min_notional=5.0).min_notional
    5.0
    """

    symbol: str
    lot: float = 0.0
    tick: float = 0.0
    min_qty: float = 0.0
    min_notional: float = 0.0


@dataclass(frozen=True)
class OrderRequest:
    """An order the book wants sent. ``ref_price`` is the price it was sized at (the last
    bar's close); ``shares`` each strategy's signed part of the target change that caused it
    (for attribution).

    >>> OrderRequest("c", "X", -2.0, ref_price=5.0, type="limit", limit_price=5.1).side
    'sell'
    """

    client_id: str
    symbol: str
    qty: float
    ref_price: float
    type: OrderType = "market"
    tif: TimeInForce = "GTC"
    limit_price: float | None = None
    shares: tuple[tuple[str, float], ...] = ()
    seq: int = 0

    @property
    def side(self) -> str:
        """``buy`` or ``sell``."""
        return "buy" if self.qty > 0 else "sell"

    @property
    def notional(self) -> float:
        """``|qty| x`` the limit price (or the reference price of a market order)."""
        return abs(self.qty) * (self.limit_price or self.ref_price)


@dataclass(frozen=True)
class OrderUpdate:
    """A broker's news of an order's status (``reason`` says why a reject or cancel).

    >>> OrderUpdate("c", "rejected", reason="insufficient balance").status
    'rejected'
    """

    client_id: str
    status: Status
    reason: str = ""
    broker_id: str = ""


@dataclass(frozen=True)
class FillEvent:
    """A broker's fill of an order: ``trade_id`` is unique per fill at the broker (a repeat
    is a duplicate), ``qty`` signed, ``fee`` in the quote currency.

    >>> FillEvent("c", "t1", 1.0, 10.0, 0.01, ts=5).fee
    0.01
    """

    client_id: str
    trade_id: str
    qty: float
    price: float
    fee: float = 0.0
    ts: int = 0


@dataclass(frozen=True)
class BrokerOrder:
    """An open order as the broker reports it.

    >>> BrokerOrder("c", "X", 2.0, 0.5).remaining
    1.5
    """

    client_id: str
    symbol: str
    qty: float
    filled: float = 0.0
    status: Status = "accepted"
    broker_id: str = ""
    fills: tuple[FillEvent, ...] = field(default=())

    @property
    def remaining(self) -> float:
        """What may still fill (signed)."""
        return self.qty - self.filled
