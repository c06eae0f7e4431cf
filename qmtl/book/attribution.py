"""Fills allocated back to the strategies whose target changes caused the order.

An order's ``shares`` are each strategy's signed gap (its target minus what it holds and has
on order) when the order was decided; they sum to the order's unrounded quantity. A fill of
``q`` gives a strategy ``q x gap / sum(gaps)``: a strategy that moved against the order gets
the opposite side (the two crossed inside the book at the fill price, and only the net went
to the market). The fee is shared by ``|gap|``, so no strategy gets a rebate. The last
strategy (the largest share) takes the rounding remainder, so the parts add up to the fill
and its fee exactly.

>>> parts = allocate(6.0, 0.6, (("a", 10.0), ("b", -4.0)))
>>> [(s, round(q, 9), round(f, 9)) for s, q, f in parts]
[('b', -4.0, 0.171428571), ('a', 10.0, 0.428571429)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from qmtl.book.errors import BookError


def allocate(
    qty: float, fee: float, shares: Sequence[tuple[str, float]]
) -> list[tuple[str, float, float]]:
    """``(strategy, qty, fee)`` of a fill of ``qty`` with ``fee`` (see the module
    docstring); an order no strategy caused (an adoption, a reconciliation) has no shares
    and is not attributed.

    >>> allocate(1.0, 0.1, ())
    []
    >>> allocate(1.0, 0.0, (("a", 1.0), ("b", -1.0)))
    Traceback (most recent call last):
    ...
    qmtl.book.errors.BookError: the shares of an order sum to 0: no fill can be attributed
    """
    live = [(s, g) for s, g in shares if g != 0.0]
    if not live:
        return []
    total = math.fsum(g for _, g in live)
    absolute = math.fsum(abs(g) for _, g in live)
    if total == 0.0:
        raise BookError("the shares of an order sum to 0: no fill can be attributed")
    live.sort(key=lambda sg: (abs(sg[1]), sg[0]))
    out: list[tuple[str, float, float]] = []
    for s, g in live[:-1]:
        out.append((s, qty * g / total, fee * abs(g) / absolute))
    last = live[-1][0]
    out.append((last, qty - math.fsum(q for _, q, _ in out), fee - math.fsum(f for *_, f in out)))
    return out
