"""The ledger against the broker: positions, open orders and balances compared with a
tolerance, into a list of differences (empty: they agree). A position the broker does not
report is compared as 0 and shown; an order the broker has and the ledger does not is
``unknown`` (never attributed to a strategy).

>>> ledger = Snapshot({"BTC": 1.0}, {"qm1": ("BTC", 0.5)}, {"USDT": 100.0})
>>> broker = Snapshot({"BTC": 1.0, "ETH": 2.0}, {"x9": ("ETH", 1.0)}, {"USDT": 100.004})
>>> [str(d) for d in compare(ledger, broker, cash_tol=0.01)]
['position ETH: ledger 0, broker 2', 'open order qm1: ledger BTC 0.5, broker none', \
'open order x9: ledger none, broker ETH 1 (unknown to the book)']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    """An account's state: position per symbol, open orders (client id -> symbol and
    remaining signed quantity) and balances per currency.

    >>> Snapshot({}, {}, {}).positions
    {}
    """

    positions: Mapping[str, float]
    open_orders: Mapping[str, tuple[str, float]]
    balances: Mapping[str, float]


@dataclass(frozen=True)
class Difference:
    """One thing the ledger and the broker disagree on.

    >>> str(Difference("balance", "USDT", "10", "9"))
    'balance USDT: ledger 10, broker 9'
    """

    kind: str
    key: str
    ledger: str
    broker: str
    note: str = ""

    def __str__(self) -> str:
        tail = f" ({self.note})" if self.note else ""
        return f"{self.kind} {self.key}: ledger {self.ledger}, broker {self.broker}{tail}"


def _order(o: tuple[str, float] | None) -> str:
    return "none" if o is None else f"{o[0]} {o[1]:g}"


def compare(
    ledger: Snapshot,
    broker: Snapshot,
    qty_tol: float = 1e-9,
    cash_tol: float = 0.01,
    currencies: tuple[str, ...] | None = None,
) -> list[Difference]:
    """The differences (see the module docstring): quantities further apart than
    ``qty_tol``, balances than ``cash_tol``; balances only of ``currencies`` (default: the
    ledger's).

    >>> compare(Snapshot({"X": 1.0}, {}, {}), Snapshot({"X": 1.0 + 1e-12}, {}, {}))
    []
    """
    out: list[Difference] = []
    for s in sorted(set(ledger.positions) | set(broker.positions)):
        a, b = ledger.positions.get(s, 0.0), broker.positions.get(s, 0.0)
        if abs(a - b) > qty_tol:
            out.append(Difference("position", s, f"{a:g}", f"{b:g}"))
    for cid in sorted(set(ledger.open_orders) | set(broker.open_orders)):
        a_o, b_o = ledger.open_orders.get(cid), broker.open_orders.get(cid)
        if (
            a_o is not None
            and b_o is not None
            and a_o[0] == b_o[0]
            and abs(a_o[1] - b_o[1]) <= qty_tol
        ):
            continue
        note = "unknown to the book" if a_o is None else ""
        out.append(Difference("open order", cid, _order(a_o), _order(b_o), note))
    for c in currencies if currencies is not None else tuple(sorted(ledger.balances)):
        a, b = ledger.balances.get(c, 0.0), broker.balances.get(c, 0.0)
        if abs(a - b) > cash_tol:
            out.append(Difference("balance", c, f"{a:.2f}", f"{b:.2f}"))
    return out
