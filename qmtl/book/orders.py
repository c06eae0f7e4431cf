"""The order state machine the book owns (a broker adapter only reports events), and client
order ids that are the same across restarts.

Statuses and their moves (``new`` is written to the ledger before the order is sent)::

    new -> submitted | rejected | denied
    submitted -> accepted | rejected | partially_filled | filled | cancelled | expired
    accepted -> partially_filled | filled | cancelled | expired
    partially_filled -> partially_filled | filled | cancelled | expired

A fill is applied once per ``trade_id`` (a repeat is a ``duplicate``); one that would fill
more than the order's quantity is an ``overfill`` and is not applied (the book halts: a
money path fails closed); a late fill of a cancelled or expired order is applied and leaves
its status; a fill of a ``new`` order (sent, but its answer lost in a crash) says it was
sent. Anything else is ``illegal`` and changes nothing.

>>> o = Order("qm1", "X", 2.0)
>>> [apply_status(o, s) for s in ("submitted", "accepted", "new")]
['applied', 'applied', 'illegal']
>>> apply_fill(o, FillEvent("qm1", "t1", 1.5, 10.0)), o.status
('applied', 'partially_filled')
>>> again, more = FillEvent("qm1", "t1", 1.5, 10.0), FillEvent("qm1", "t2", 1.0, 10.0)
>>> apply_fill(o, again), apply_fill(o, more)
('duplicate', 'overfill')
>>> apply_fill(o, FillEvent("qm1", "t3", 0.5, 11.0)), o.status, o.avg_price
('applied', 'filled', 10.25)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Literal

from qmtl.book.model import OPEN, FillEvent, OrderRequest

Outcome = Literal["applied", "duplicate", "illegal", "overfill"]

MOVES: dict[str, frozenset[str]] = {
    "new": frozenset({"submitted", "rejected", "denied"}),
    "submitted": frozenset(
        {"accepted", "rejected", "partially_filled", "filled", "cancelled", "expired"}
    ),
    "accepted": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
    "partially_filled": frozenset({"partially_filled", "filled", "cancelled", "expired"}),
}
"""Status -> the statuses it may move to (terminal statuses move nowhere)."""

EPS = 1e-9


@dataclass
class Order:
    """One order in the book's ledger (see the module docstring).

    >>> Order("c", "X", -1.0).open
    True
    """

    client_id: str
    symbol: str
    qty: float
    status: str = "new"
    filled: float = 0.0
    cost: float = 0.0
    fees: float = 0.0
    reason: str = ""
    broker_id: str = ""
    ref_price: float = 0.0
    shares: tuple[tuple[str, float], ...] = ()
    seq: int = 0
    ts: int = 0
    trades: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, req: OrderRequest, ts: int = 0) -> Order:
        """The ledger's order for a request.

        >>> Order.of(OrderRequest("c", "X", 1.0, ref_price=2.0)).ref_price
        2.0
        """
        return cls(
            req.client_id,
            req.symbol,
            req.qty,
            ref_price=req.ref_price,
            shares=req.shares,
            seq=req.seq,
            ts=ts,
        )

    @property
    def open(self) -> bool:
        """Whether it may still fill."""
        return self.status in OPEN

    @property
    def remaining(self) -> float:
        """Signed quantity still to fill (0 once closed)."""
        return self.qty - self.filled if self.open else 0.0

    @property
    def avg_price(self) -> float:
        """The average fill price (0 before a fill)."""
        return self.cost / self.filled if self.filled else 0.0


def apply_status(order: Order, status: str, reason: str = "") -> Outcome:
    """Move ``order`` to ``status`` if the table allows it; a repeat of a terminal status
    is a ``duplicate``.

    >>> o = Order("c", "X", 1.0, status="filled")
    >>> apply_status(o, "filled"), apply_status(o, "cancelled")
    ('duplicate', 'illegal')
    """
    if status == order.status and status not in MOVES:
        return "duplicate"
    if status not in MOVES.get(order.status, frozenset()):
        return "illegal"
    if status == "filled" and abs(order.filled) < abs(order.qty) - EPS:
        return "illegal"  # filled is what the fills say, not a status alone
    order.status = status
    if reason:
        order.reason = reason
    return "applied"


def apply_fill(order: Order, fill: FillEvent) -> Outcome:
    """Apply a fill (see the module docstring).

    >>> o = Order("c", "X", -1.0, status="cancelled")
    >>> apply_fill(o, FillEvent("c", "t", -1.0, 5.0)), o.status, o.filled
    ('applied', 'cancelled', -1.0)
    >>> apply_fill(Order("c", "X", 1.0), FillEvent("c", "t", -1.0, 5.0))
    'illegal'
    """
    if fill.trade_id in order.trades:
        return "duplicate"
    if (
        order.status in ("rejected", "denied")
        or fill.qty == 0
        or math.copysign(1.0, fill.qty) != math.copysign(1.0, order.qty)
        or not math.isfinite(fill.price)
        or fill.price <= 0
    ):
        return "illegal"
    if abs(order.filled + fill.qty) > abs(order.qty) + EPS:
        return "overfill"
    order.trades.add(fill.trade_id)
    order.filled += fill.qty
    order.cost += fill.qty * fill.price
    order.fees += fill.fee
    if order.open:
        order.status = "filled" if abs(order.filled) >= abs(order.qty) - EPS else "partially_filled"
    return "applied"


def client_order_id(world: str, account: str, symbol: str, seq: int) -> str:
    """The order id sent to the broker: a hash of the world, account, symbol and the book's
    decision sequence, so the decision made again after a restart carries the same id and a
    broker (or the ledger) that has it already is not sent it twice. 32 characters of
    ``[0-9a-z]``, which every ccxt venue that takes client ids accepts.

    >>> a = client_order_id("w", "main", "BTC/USDT", 7)
    >>> a == client_order_id("w", "main", "BTC/USDT", 7), len(a), a[:2]
    (True, 32, 'qm')
    >>> a == client_order_id("w", "main", "BTC/USDT", 8)
    False
    """
    raw = "\x1f".join((world, account, symbol, str(int(seq)))).encode()
    return "qm" + hashlib.sha256(raw).hexdigest()[:30]
