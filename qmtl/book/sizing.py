"""The order that brings the account to its net target: net target - position - open
orders (LEAN's rule), held back inside the no-trade band or below the minimum notional
(:func:`dataflows.execution.held_back`, the backtest's rule), cut toward zero to the lot
(so it never trades past the target, nor past a limit the target kept), dropped below the
instrument's minimum quantity or notional; a limit price on the tick, never worse for the
order than asked.

>>> inst = Instrument("X", lot=0.1, min_notional=5.0)
>>> order_qty(10.37, position=2.0, open_qty=1.0, price=10.0, inst=inst, equity=1000.0)
7.3
>>> order_qty(3.05, position=2.0, open_qty=1.0, price=10.0, inst=inst, equity=1000.0)
0.0
"""

from __future__ import annotations

from dataflows.execution import held_back, lots_toward_zero, tick_price
from qmtl.book.model import Instrument


def order_qty(
    net: float,
    position: float,
    open_qty: float,
    price: float,
    inst: Instrument,
    equity: float,
    band: float = 0.0,
    min_notional: float = 0.0,
) -> float:
    """The signed quantity to order now (0: none). ``band`` is a fraction of ``equity``,
    ``min_notional`` the book's own floor (the instrument's minimum applies as well, and
    also to an order that closes).

    >>> order_qty(0.0, 5.0, 0.0, 10.0, Instrument("X"), 1e6, min_notional=1e3)  # closes
    -5.0
    >>> order_qty(5.004, 0.0, 0.0, 10.0, Instrument("X", lot=0.01), 100.0, band=0.6)
    0.0
    """
    projected = position + open_qty
    delta = net - projected
    if delta == 0 or price <= 0:
        return 0.0
    closing = net == 0.0 and projected != 0.0
    if held_back(abs(delta) * price / equity, closing, band, min_notional, equity):
        return 0.0
    q = lots_toward_zero(delta, inst.lot)
    if abs(q) < max(inst.min_qty, 1e-12) or abs(q) * price < inst.min_notional:
        return 0.0
    return q


def limit_price(price: float, inst: Instrument, qty: float) -> float:
    """``price`` on the instrument's tick, rounded in the order's favour.

    >>> limit_price(10.017, Instrument("X", tick=0.01), -1.0)
    10.02
    """
    return tick_price(price, inst.tick, qty)
