"""One decision of the book: from the ledger (targets, world weights, positions, open
orders, prices) to the events to store before anything is sent: a trading-state change
when a loss limit is crossed, then per symbol an ``order`` (sized by
:mod:`~qmtl.book.sizing`, checked by :mod:`~qmtl.book.risk`) or a ``denied`` order with
its reason. Pure: the shell stores the events, applies them to the ledger, and sends the
orders.

A strategy the world does not list as active (or any strategy once the world is gone) never
trades on its last target: its part is held (``inactive="hold"``) or brought to 0
(``"flatten"``); one whose activation is not known now (``held``) is held whatever the
policy. What no strategy holds (``external``, adopted from the broker) is held.

>>> from qmtl.book.ledger import Ledger
>>> led = Ledger("w", cash=1000.0, prices={"X": 10.0})
>>> led.targets = {"a": {"X": 0.5}, "b": {"X": -0.3}}
>>> led.weights = {"a": 0.5, "b": 0.5}
>>> [(e["kind"], e["qty"], e["shares"]) for e in decide(led, {}, BookPolicy(), RateLimit(0, 1))]
[('order', 10.0, [['a', 25.0], ['b', -15.0]])]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from qmtl.book.ledger import Ledger, request_event
from qmtl.book.model import Instrument, OrderRequest
from qmtl.book.netting import StrategyTarget, net_targets
from qmtl.book.orders import client_order_id
from qmtl.book.risk import AccountView, RateLimit, RiskLimits, auto_state, check
from qmtl.book.sizing import limit_price, order_qty


@dataclass(frozen=True)
class BookPolicy:
    """How the book trades: the no-trade ``band`` (a fraction of equity) and its minimum
    order notional, what becomes of an inactive strategy's part, the order type (a limit
    order is priced ``limit_offset`` beyond the last close, on the tick) and the risk limits.

    >>> BookPolicy().inactive, BookPolicy(order_type="limit").tif
    ('hold', 'GTC')
    """

    band: float = 0.0
    min_notional: float = 0.0
    inactive: Literal["hold", "flatten"] = "hold"
    order_type: Literal["market", "limit"] = "market"
    tif: Literal["GTC", "IOC"] = "GTC"
    limit_offset: float = 0.0
    limits: RiskLimits = field(default_factory=RiskLimits)


def _wanted(
    led: Ledger, policy: BookPolicy
) -> tuple[list[StrategyTarget], dict[str, float], dict[tuple[str, str], float]]:
    """Active targets, their world weights, and the quantities held as they are."""
    active = {s: w for s, w in led.weights.items() if led.world_known}
    targets = [
        StrategyTarget(sid, sym, w)
        for sid, tw in led.targets.items()
        if sid in active
        for sym, w in tw.items()
    ]
    fixed = {
        (sid, sym): q
        for (sid, sym), q in led.strategy_pos.items()
        if q and sid not in active and (sid in led.held or policy.inactive == "hold")
    }
    for sym, q in led.external.items():
        fixed[("", sym)] = q
    return targets, active, fixed


def decide(
    led: Ledger,
    instruments: Mapping[str, Instrument],
    policy: BookPolicy,
    rate: RateLimit,
    now_s: float = 0.0,
    ts: int = 0,
) -> list[dict[str, Any]]:
    """The events of one decision (see the module docstring).

    >>> led = Ledger("w", cash=1000.0, prices={"X": 10.0}, state="HALTED")
    >>> led.targets, led.weights = {"a": {"X": 1.0}}, {"a": 1.0}
    >>> [(e["kind"], e["reason"]) for e in decide(led, {}, BookPolicy(), RateLimit(0, 1))]
    [('denied', 'HALTED: no order may go')]
    """
    events: list[dict[str, Any]] = []
    equity = led.equity()
    state, why = auto_state(led.state, equity, led.day_start, led.peak, policy.limits)
    if state != led.state:
        events.append({"kind": "state", "state": state, "reason": why, "who": "risk"})
    targets, active, fixed = _wanted(led, policy)
    net = net_targets(targets, active, equity, led.prices, fixed)
    open_qty = led.open_qty()
    mine = led.strategy_open()
    pending = dict(open_qty)
    view = AccountView(led.positions, pending, led.prices)
    for sym in sorted(set(net) | {s for s, q in led.positions.items() if q} | set(open_qty)):
        price = led.prices.get(sym, 0.0)
        target = net[sym] if sym in net else None
        want = target.qty if target is not None else 0.0
        inst = instruments.get(sym, Instrument(sym))
        qty = order_qty(
            want,
            led.positions.get(sym, 0.0),
            open_qty.get(sym, 0.0),
            price,
            inst,
            equity,
            policy.band,
            policy.min_notional,
        )
        if not qty:
            continue
        parts = dict(target.parts) if target is not None else {}
        sids = (
            {s for s in parts if s}
            | {s for (s, y) in led.strategy_pos if y == sym}
            | {s for (s, y) in mine if y == sym}
        )
        gaps = [
            (s, parts.get(s, 0.0) - led.strategy_pos.get((s, sym), 0.0) - mine.get((s, sym), 0.0))
            for s in sorted(sids)
        ]
        shares = tuple((s, g) for s, g in gaps if abs(g) > 1e-12)
        if abs(sum(g for _, g in shares)) < 1e-12:
            shares = ()
        seq = led.seq.get(sym, 0) + 1
        lim = (
            limit_price(price * (1 + policy.limit_offset * (1 if qty > 0 else -1)), inst, qty)
            if policy.order_type == "limit"
            else None
        )
        req = OrderRequest(
            client_order_id(led.world, led.account, sym, seq),
            sym,
            qty,
            price,
            policy.order_type,
            policy.tif,
            lim,
            shares,
            seq,
        )
        reason = check(req, view, policy.limits, state)
        if reason is None and not rate.take(now_s):
            reason = f"order rate over {policy.limits.max_orders} in {policy.limits.window_s:g} s"
        if reason is None:
            events.append(request_event(req, ts=ts))
            pending[sym] = pending.get(sym, 0.0) + qty
        elif led.last_denied.get(sym) != (qty, reason):  # the same denial again: said once
            events.append(request_event(req, "denied", reason=reason, ts=ts))
    return events
