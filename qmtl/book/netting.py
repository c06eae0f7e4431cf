"""Net targets: the account's target quantity per symbol is the sum over its strategies of
world weight x the strategy's target weight x the account's equity, divided by the symbol's
price. Long and short of the same symbol net; each strategy's part is kept for attribution.

>>> net = net_targets([StrategyTarget("a", "X", 1.0), StrategyTarget("b", "X", -1.0),
...                    StrategyTarget("b", "Y", 0.5)], {"a": 0.6, "b": 0.4}, 100.0,
...                   {"X": 2.0, "Y": 4.0})
>>> round(net["X"].qty, 9), net["X"].parts, net["Y"].qty
(10.0, {'a': 30.0, 'b': -20.0}, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from qmtl.book.errors import BookError


@dataclass(frozen=True)
class StrategyTarget:
    """One strategy's target weight of one symbol (a fraction of the strategy's capital;
    negative is short).

    >>> StrategyTarget("s", "BTC/USDT", -0.25).weight
    -0.25
    """

    strategy_id: str
    symbol: str
    weight: float


@dataclass(frozen=True)
class NetTarget:
    """The account's target of one symbol: ``qty`` (signed) and each strategy's part of it.

    >>> NetTarget("X", 3.0, {"a": 3.0}).notional(2.0)
    6.0
    """

    symbol: str
    qty: float
    parts: dict[str, float] = field(default_factory=dict)

    def notional(self, price: float) -> float:
        """The target's signed notional at ``price``."""
        return self.qty * price


def _finite(value: float, what: str) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise BookError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def net_targets(
    targets: Iterable[StrategyTarget],
    world_weights: Mapping[str, float],
    equity: float,
    prices: Mapping[str, float],
    fixed: Mapping[tuple[str, str], float] | None = None,
) -> dict[str, NetTarget]:
    """Per symbol, the account's net target (see the module docstring). A strategy missing
    from ``world_weights`` has weight 0. ``fixed`` gives quantities held as they are
    (``(strategy, symbol) -> qty``: a strategy no longer active whose part is held, not
    traded). A target needs a positive price.

    >>> net_targets([StrategyTarget("a", "X", 1.0)], {"a": 1.0}, 10.0, {})
    Traceback (most recent call last):
    ...
    qmtl.book.errors.BookError: no positive price for X (strategy a's target): cannot size it
    >>> net_targets([], {}, 10.0, {}, fixed={("a", "X"): 2.0})["X"].qty
    2.0
    """
    equity = _finite(equity, "equity")
    out: dict[str, dict[str, float]] = {}
    for t in targets:
        w = _finite(world_weights.get(t.strategy_id, 0.0), f"world weight of {t.strategy_id}")
        tw = _finite(t.weight, f"target weight of {t.strategy_id} in {t.symbol}")
        price = prices.get(t.symbol)
        if price is None or not math.isfinite(price) or price <= 0:
            raise BookError(
                f"no positive price for {t.symbol} (strategy {t.strategy_id}'s target): "
                "cannot size it"
            )
        parts = out.setdefault(t.symbol, {})
        parts[t.strategy_id] = parts.get(t.strategy_id, 0.0) + w * tw * equity / price
    for (sid, symbol), qty in (fixed or {}).items():
        parts = out.setdefault(symbol, {})
        parts[sid] = parts.get(sid, 0.0) + _finite(qty, f"held quantity of {sid} in {symbol}")
    return {
        s: NetTarget(s, math.fsum(parts.values()), dict(sorted(parts.items())))
        for s, parts in sorted(out.items())
    }
