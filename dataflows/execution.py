"""The execution rule and cost model: how a target weight becomes a trade, at what price and
for what cost. One module, pure (no I/O), used by the backtest's portfolio
(:mod:`dataflows.portfolio`, so also sweeps, live runs and the world's records) and by the
paper broker (:mod:`connectors.live.paper_broker`), so that a paper run fills exactly the
trades its backtest assumed.

Rules (``Execution.rule``):

- ``close``: a weight decided at bar t trades at bar t's close (the default, as before);
- ``next_open``: it trades at the open of the symbol's next bar (backtesting.py's default);
  the bar's return is then held by the old weight from the previous close to the open and by
  the new weight from the open to the close. A decision never sees the bar it trades on.

Costs of a trade of ``|dw|`` (a fraction of equity): ``fee_bps`` of notional (the strategy's
``cost_bps``) plus slippage, paid in the fill price (``price x (1 + s)`` buying,
``x (1 - s)`` selling), with

    s = spread_bps / 2 / 1e4 + slippage_vol x sigma

where sigma is the population standard deviation of the symbol's last ``vol_window``
close-to-close returns up to the decision bar (0 until there are that many).

Sizing a broker can fill (applied to the weights after the gross and net caps, per symbol at
its own bars): a target within ``no_trade_band`` of the weight held is not traded; an order
whose notional ``|dw| x capital`` is below ``min_order_notional`` is not sent (an order to
close a position always is); with ``lot_size`` the quantity ``w x capital / close`` is
rounded to whole lots (half away from zero), and the weight held is the rounded one.

>>> ex = Execution(rule="next_open", spread_bps=10.0)
>>> s = slippage(ex, sigma=0.0)
>>> round(s, 6), round(fill_price(100.0, 1.0, s), 6), round(fill_price(100.0, -1.0, s), 6)
(0.0005, 100.05, 99.95)
>>> round(fee(50.0, 100.05, fee_bps=2.0), 6)
1.0005
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Rule = Literal["close", "next_open"]
RULES: tuple[str, ...] = ("close", "next_open")
"""The execution rules there are."""


class ExecutionError(ValueError):
    """Execution settings that cannot work (an unknown rule, a negative cost, ...).

    >>> str(ExecutionError("x"))
    'x'
    """


@dataclass(frozen=True)
class Execution:
    """How a strategy's target weights are executed (see the module docstring). The fee is
    the strategy's ``cost_bps``, kept beside this.

    >>> Execution().rule, Execution().default
    ('close', True)
    >>> Execution(rule="open")
    Traceback (most recent call last):
    ...
    dataflows.execution.ExecutionError: execution rule must be one of close, next_open; got 'open'
    """

    rule: Rule = "close"
    spread_bps: float = 0.0
    slippage_vol: float = 0.0
    vol_window: int = 20
    no_trade_band: float = 0.0
    min_order_notional: float = 0.0
    lot_size: float | Mapping[str, float] = 0.0
    capital: float = 1_000_000.0
    _lots: tuple[tuple[str, float], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ExecutionError(
                f"execution rule must be one of {', '.join(RULES)}; got {self.rule!r}"
            )
        for name in ("spread_bps", "slippage_vol", "no_trade_band", "min_order_notional"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ExecutionError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.vol_window, int) and self.vol_window >= 2):
            raise ExecutionError(f"vol_window must be an integer >= 2, got {self.vol_window!r}")
        if not (
            isinstance(self.capital, (int, float))
            and math.isfinite(self.capital)
            and self.capital > 0
        ):
            raise ExecutionError(f"capital must be a finite number > 0, got {self.capital!r}")
        lots = dict(self.lot_size) if isinstance(self.lot_size, Mapping) else {"*": self.lot_size}
        for sym, lot in lots.items():
            if not (isinstance(lot, (int, float)) and math.isfinite(lot) and lot >= 0):
                raise ExecutionError(
                    f"lot_size of {sym!r} must be a finite number >= 0, got {lot!r}"
                )
        object.__setattr__(self, "_lots", tuple(sorted((k, float(v)) for k, v in lots.items())))

    @property
    def default(self) -> bool:
        """True for today's rule with no slippage or sizing (the fast path of the portfolio).

        >>> Execution(spread_bps=1.0).default
        False
        """
        return (
            self.rule == "close"
            and not self.spread_bps
            and not self.slippage_vol
            and not self.sizing
        )

    @property
    def sizing(self) -> bool:
        """Whether a band, a minimum notional or lots change the weights.

        >>> Execution(lot_size={"A": 1.0}).sizing, Execution().sizing
        (True, False)
        """
        return bool(self.no_trade_band or self.min_order_notional or any(v for _k, v in self._lots))

    def lot(self, symbol: str) -> float:
        """The lot of ``symbol`` (0: no rounding).

        >>> Execution(lot_size={"A": 10.0}).lot("A"), Execution(lot_size=5.0).lot("B")
        (10.0, 5.0)
        """
        lots = dict(self._lots)
        return lots.get(symbol, lots.get("*", 0.0))

    def settings(self) -> dict[str, Any]:
        """The settings as JSON-able data (for ``metrics.json`` and the world's records).

        >>> Execution(rule="next_open").settings()["rule"]
        'next_open'
        """
        lots = dict(self._lots)
        return {
            "rule": self.rule,
            "spread_bps": float(self.spread_bps),
            "slippage_vol": float(self.slippage_vol),
            "vol_window": self.vol_window,
            "no_trade_band": float(self.no_trade_band),
            "min_order_notional": float(self.min_order_notional),
            "lot_size": lots.get("*", 0.0) if list(lots) == ["*"] else lots,
            "capital": float(self.capital),
        }


def slippage(ex: Execution, sigma: float | np.ndarray) -> Any:
    """The slippage fraction of a fill (half the spread plus ``slippage_vol x sigma``).

    >>> slippage(Execution(spread_bps=4.0, slippage_vol=0.5), 0.02)
    0.0102
    """
    return ex.spread_bps / 2e4 + ex.slippage_vol * sigma


def fill_price(ref: float, qty: float, slip: float) -> float:
    """The price a fill of ``qty`` (signed) gets at reference price ``ref``: against the
    trade by ``slip``.

    >>> fill_price(10.0, -3.0, 0.01), fill_price(10.0, 0.0, 0.01)
    (9.9, 10.0)
    """
    side = 1.0 if qty > 0 else -1.0 if qty < 0 else 0.0
    return ref * (1.0 + slip * side)


def fee(qty: float, price: float, fee_bps: float) -> float:
    """The fee of a fill: ``fee_bps`` of its notional.

    >>> fee(-10.0, 5.0, 10.0)
    0.05
    """
    return abs(qty) * price * fee_bps / 1e4


def rolling_sigma(
    closes: np.ndarray, tail: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per bar, the population std of the last ``window`` close-to-close returns ending at
    that bar (0 until there are that many), and the closes to carry to the next batch.
    ``tail`` holds the previous batches' last ``window`` closes (fewer at the start). Each
    value is computed from its own window in a fixed order, so it does not depend on how the
    closes were batched.

    >>> c = np.array([100.0, 101.0, 99.0, 102.0])
    >>> sig, tail = rolling_sigma(c, np.empty(0), 2)
    >>> r = c[1:] / c[:-1] - 1
    >>> sig[:2].tolist(), bool(np.isclose(sig[2], np.std(r[:2]))), tail.tolist()
    ([0.0, 0.0], True, [101.0, 99.0, 102.0])
    >>> a, t = rolling_sigma(c[:3], np.empty(0), 2)
    >>> b, _ = rolling_sigma(c[3:], t, 2)
    >>> np.concatenate([a, b]).tolist() == sig.tolist()
    True
    """
    allc = np.concatenate([tail, closes]) if len(tail) else closes
    n_new = len(closes)
    out = np.zeros(n_new)
    if len(allc) >= window + 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = allc[1:] / allc[:-1] - 1.0
        r = np.where(np.isfinite(r), r, 0.0)
        views = np.lib.stride_tricks.sliding_window_view(r, window)  # one row per window end
        acc = views[:, 0].copy()
        for j in range(1, window):
            acc += views[:, j]
        mean = acc / window
        dev = views[:, 0] - mean
        sq = dev * dev
        for j in range(1, window):
            dev = views[:, j] - mean
            sq += dev * dev
        sig = np.sqrt(sq / window)
        # window k ends at return k + window - 1, i.e. at close k + window of allc
        ends = np.arange(window, len(allc))
        first_new = len(allc) - n_new
        pick = ends >= first_new
        out[ends[pick] - first_new] = sig[pick]
    return out, allc[-(window + 1) :].copy() if len(allc) > window else allc.copy()


def size_weights(
    ex: Execution, symbol: str, target: np.ndarray, close: np.ndarray, held: float
) -> tuple[np.ndarray, float]:
    """One symbol's targets at its own bars made fillable (band, minimum notional, lots: see
    the module docstring), starting from the weight ``held``; returns the weights held after
    each bar and the last one.

    >>> ex = Execution(no_trade_band=0.05, min_order_notional=100.0, capital=1000.0,
    ...                lot_size=1.0)
    >>> w, last = size_weights(ex, "A", np.array([0.5, 0.52, 0.75, 0.84, 0.0]),
    ...                        np.full(5, 10.0), 0.0)
    >>> w.tolist(), last          # 0.52: in the band; 0.84: 90 < 100 of notional
    ([0.5, 0.5, 0.75, 0.75, 0.0], 0.0)
    """
    out = np.empty(len(target))
    lot = ex.lot(symbol)
    band, floor, capital = ex.no_trade_band, ex.min_order_notional, ex.capital
    h = float(held)
    for k in range(len(target)):
        w = float(target[k])
        if lot and close[k] > 0:
            q = w * capital / float(close[k]) / lot
            q = math.floor(abs(q) + 0.5) * (1.0 if q >= 0 else -1.0)
            w = q * lot * float(close[k]) / capital
        if held_back(abs(w - h), w == 0.0 and h != 0.0, band, floor, capital):
            w = h
        h = w
        out[k] = w
    return out, h


def lot_quantity(qty: float, lot: float) -> float:
    """``qty`` rounded to whole lots (as :func:`size_weights` rounds; ``lot`` 0: as is).

    >>> lot_quantity(49.99999999, 1.0), lot_quantity(-12.5, 5.0), lot_quantity(3.3, 0.0)
    (50.0, -15.0, 3.3)
    """
    if not lot:
        return qty
    q = qty / lot
    return math.floor(abs(q) + 0.5) * (1.0 if q >= 0 else -1.0) * lot


def held_back(dw: float, closing: bool, band: float, floor: float, capital: float) -> bool:
    """Whether a trade of ``dw`` (a fraction of ``capital``) is not sent: within the no-trade
    ``band``, or below the minimum order notional ``floor``; an order that closes a position
    always goes. The one rule of the backtest's sizing and of the world's book.

    >>> held_back(0.01, False, 0.02, 0.0, 1e6), held_back(0.01, True, 0.02, 0.0, 1e6)
    (True, False)
    >>> held_back(0.05, False, 0.0, 100.0, 1000.0), held_back(0.0, False, 0.0, 0.0, 1.0)
    (True, False)
    """
    return dw > 0 and not closing and (dw <= band or dw * capital < floor)


def lots_toward_zero(qty: float, lot: float) -> float:
    """``qty`` cut to whole lots toward zero (``lot`` 0: as is): an order so rounded never
    trades past its target, so never past a limit the target kept. A hair under a whole lot
    (float noise, 1e-9 of a lot) counts as the lot.

    >>> lots_toward_zero(49.99999999999, 1.0), lots_toward_zero(-12.5, 5.0)
    (50.0, -10.0)
    """
    if not lot:
        return qty
    q = abs(qty) / lot
    return round(math.floor(q + 1e-9) * lot, 12) * (1.0 if qty >= 0 else -1.0)


def tick_price(price: float, tick: float, qty: float) -> float:
    """A limit price on the instrument's tick, never worse for the order than ``price``: a buy
    (``qty`` > 0) rounds down, a sell up (``tick`` 0: as is).

    >>> tick_price(100.037, 0.01, 1.0), tick_price(100.031, 0.01, -1.0)
    (100.03, 100.04)
    """
    if not tick:
        return price
    steps = price / tick
    steps = math.floor(steps + 1e-9) if qty > 0 else math.ceil(steps - 1e-9)
    return round(steps * tick, 12)
