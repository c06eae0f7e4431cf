"""The pre-trade risk engine: every order, before it leaves, against the account's limits
and trading state. A breach denies the order with a reason (an event on the order, never an
exception). Cancels are never checked.

Limits (notional in the account's currency; ``inf`` or 0 where noted: off):

- ``max_order_notional``: one order's ``|qty| x price``;
- ``max_position_notional``: a symbol's ``|position + open + order| x price``;
- ``max_gross`` / ``max_net``: the account's sum of ``|exposure|`` / ``|sum of exposure|``
  after the order (an order that brings either down passes);
- ``max_orders`` per ``window_s`` seconds (0: off): the order rate;
- ``collar`` (a fraction, 0: off): the order's price against the last bar's close;
- ``daily_loss`` / ``max_drawdown`` (fractions of the day's first equity / of the peak):
  crossing one halts the account (:func:`auto_state`).

States: ``ACTIVE``; ``REDUCING`` lets only orders through that shrink the symbol's exposure
without flipping it; ``HALTED`` lets none through.

>>> limits = RiskLimits(max_order_notional=1000.0)
>>> view = AccountView(positions={"X": 0.0}, open_qty={}, prices={"X": 10.0})
>>> check(OrderRequest("c", "X", 150.0, ref_price=10.0), view, limits, "ACTIVE")
'order notional 1500.00 over the limit 1000.00'
>>> check(OrderRequest("c", "X", 50.0, ref_price=10.0), view, limits, "ACTIVE") is None
True
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from qmtl.book.model import OrderRequest

TradingState = Literal["ACTIVE", "REDUCING", "HALTED"]
STATES: tuple[str, ...] = ("ACTIVE", "REDUCING", "HALTED")
INF = math.inf


@dataclass(frozen=True)
class RiskLimits:
    """The account's limits (see the module docstring).

    >>> RiskLimits().max_gross, RiskLimits(max_orders=5).window_s
    (inf, 60.0)
    """

    max_order_notional: float = INF
    max_position_notional: float = INF
    max_gross: float = INF
    max_net: float = INF
    max_orders: int = 0
    window_s: float = 60.0
    collar: float = 0.0
    daily_loss: float = INF
    max_drawdown: float = INF


@dataclass(frozen=True)
class AccountView:
    """What the checks read: positions and open quantity per symbol, and the last bar's
    close per symbol.

    >>> AccountView({"X": 2.0}, {"X": 1.0}, {"X": 5.0}).exposure("X")
    3.0
    """

    positions: Mapping[str, float]
    open_qty: Mapping[str, float]
    prices: Mapping[str, float]

    def exposure(self, symbol: str) -> float:
        """Position plus open orders (signed quantity)."""
        return self.positions.get(symbol, 0.0) + self.open_qty.get(symbol, 0.0)

    def notionals(self) -> dict[str, float]:
        """Signed exposure notional per symbol."""
        syms = set(self.positions) | set(self.open_qty)
        return {s: self.exposure(s) * self.prices.get(s, 0.0) for s in syms}


def _reduces(before: float, after: float) -> bool:
    return abs(after) <= abs(before) + 1e-12 and before * after >= 0


def check(req: OrderRequest, view: AccountView, limits: RiskLimits, state: str) -> str | None:
    """Why ``req`` is denied, or None (see the module docstring).

    >>> v = AccountView({"X": 5.0}, {}, {"X": 10.0})
    >>> check(OrderRequest("c", "X", 1.0, ref_price=10.0), v, RiskLimits(), "REDUCING")
    'REDUCING: only orders that reduce the exposure of X may go (5 -> 6)'
    >>> check(OrderRequest("c", "X", -2.0, ref_price=10.0), v, RiskLimits(), "REDUCING")
    >>> check(OrderRequest("c", "X", -2.0, ref_price=10.0), v, RiskLimits(), "HALTED")
    'HALTED: no order may go'
    """
    if state == "HALTED":
        return "HALTED: no order may go"
    if state not in STATES:
        return f"unknown trading state {state!r}: no order may go"
    price = req.limit_price or req.ref_price
    if not (math.isfinite(price) and price > 0):
        return f"no positive price for {req.symbol}"
    before = view.exposure(req.symbol)
    after = before + req.qty
    reducing = _reduces(before, after)
    if state == "REDUCING" and not reducing:
        return (
            f"REDUCING: only orders that reduce the exposure of {req.symbol} may go "
            f"({before:g} -> {after:g})"
        )
    last = view.prices.get(req.symbol)
    if limits.collar and last and abs(price / last - 1.0) > limits.collar:
        return (
            f"price {price:g} outside the collar of {limits.collar:.2%} around the last "
            f"close {last:g}"
        )
    if req.notional > limits.max_order_notional:
        return f"order notional {req.notional:.2f} over the limit {limits.max_order_notional:.2f}"
    mark = last or price
    if not reducing and abs(after) * mark > limits.max_position_notional:
        return (
            f"position of {req.symbol} would be {abs(after) * mark:.2f} of notional, over "
            f"the limit {limits.max_position_notional:.2f}"
        )
    notionals = view.notionals()
    gross_before = math.fsum(abs(n) for n in notionals.values())
    net_before = math.fsum(notionals.values())
    notionals[req.symbol] = after * mark
    gross = math.fsum(abs(n) for n in notionals.values())
    net = math.fsum(notionals.values())
    if gross > limits.max_gross and gross > gross_before:
        return f"gross exposure would be {gross:.2f}, over the limit {limits.max_gross:.2f}"
    if abs(net) > limits.max_net and abs(net) > abs(net_before):
        return f"net exposure would be {net:.2f}, over the limit {limits.max_net:.2f}"
    return None


@dataclass
class RateLimit:
    """At most ``max_orders`` orders in any ``window_s`` seconds (0: no limit); times are
    passed in, so it is pure.

    >>> r = RateLimit(2, 10.0)
    >>> [r.take(t) for t in (0.0, 1.0, 2.0, 10.5)]
    [True, True, False, True]
    """

    max_orders: int
    window_s: float
    sent: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> bool:
        """Count an order at ``now`` if the window has room; False if not."""
        if not self.max_orders:
            return True
        while self.sent and self.sent[0] <= now - self.window_s:
            self.sent.popleft()
        if len(self.sent) >= self.max_orders:
            return False
        self.sent.append(now)
        return True


def auto_state(
    state: str, equity: float, day_start: float, peak: float, limits: RiskLimits
) -> tuple[str, str]:
    """The state after marking the account at ``equity``: HALTED with a reason when the
    day's loss or the drawdown from ``peak`` crosses its limit, else as it was.

    >>> auto_state("ACTIVE", 94.0, 100.0, 100.0, RiskLimits(daily_loss=0.05))
    ('HALTED', 'daily loss 6.00% over the limit 5.00%')
    >>> auto_state("ACTIVE", 94.0, 90.0, 110.0, RiskLimits(max_drawdown=0.1))
    ('HALTED', 'drawdown 14.55% over the limit 10.00%')
    >>> auto_state("REDUCING", 99.0, 100.0, 100.0, RiskLimits(daily_loss=0.05))
    ('REDUCING', '')
    """
    if state != "HALTED":
        loss = 1.0 - equity / day_start if day_start > 0 else 0.0
        if loss > limits.daily_loss:
            return "HALTED", f"daily loss {loss:.2%} over the limit {limits.daily_loss:.2%}"
        dd = 1.0 - equity / peak if peak > 0 else 0.0
        if dd > limits.max_drawdown:
            return "HALTED", f"drawdown {dd:.2%} over the limit {limits.max_drawdown:.2%}"
    return state, ""
