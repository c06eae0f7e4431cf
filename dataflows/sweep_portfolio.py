"""The portfolios of a sweep's variants that share one universe, as one array per batch.

When every symbol has a batch over the same bar times (an aligned replay), the variants'
portfolios are computed together: weights as a ``variants x symbols x bars`` array, the
price moves once for all of them (they depend on the bars only), and then exactly the
element-wise operations of :meth:`dataflows.portfolio.Portfolio._process`, in the same order
(sums over symbols row by row), so every variant's returns are bit-identical to its own
:class:`~dataflows.portfolio.Portfolio`. Anything else (a symbol missing at some time, a
batch that is not aligned) hands the state over to one ``Portfolio`` per variant
(:meth:`StackedPortfolio.split`), which carries on from there.

>>> import numpy as np
>>> from dataflows.portfolio import SignalBatch
>>> sp = StackedPortfolio(["A"], costs=[0.0, 0.0], max_gross=[1.0, 1.0])
>>> sp.push("A", np.array([1, 2, 3]), np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
...         np.array([100.0, 110.0, 99.0]))
True
>>> out = sp.process()
>>> out.returns[0].round(6).tolist(), out.equity[1].tolist()
([0.0, 0.1, -0.1], [1.0, 1.0, 1.0])
>>> p = Portfolio(["A"], 0.0, 1.0)
>>> p.push(SignalBatch("A", np.array([1, 2, 3]), np.array([1.0, 1.0, 0.0]),
...                    np.array([100.0, 110.0, 99.0])))
>>> bool(np.array_equal(p.drain().returns, out.returns[0]))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dataflows.portfolio import Portfolio, SignalBatch


@dataclass
class Stacked:
    """One processed batch of every variant: ``ts`` (bars) and ``variants x bars`` series.

    >>> Stacked(np.arange(2), np.zeros((1, 2)), np.ones((1, 2)), np.zeros((1, 2)),
    ...         np.zeros((1, 2))).returns.shape
    (1, 2)
    """

    ts: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    turnover: np.ndarray
    gross: np.ndarray


def _sum_symbols(m: np.ndarray) -> np.ndarray:
    """Sum over the symbol axis (1) adding rows in order, as ``portfolio._sum_rows`` does."""
    if m.shape[1] == 1:
        return m[:, 0]
    acc = m[:, 0].copy()
    for j in range(1, m.shape[1]):
        acc += m[:, j]
    return acc


class StackedPortfolio:
    """The portfolios of variants over one universe (see the module docstring).

    >>> StackedPortfolio(["B", "A"], [0.0], [1.0]).symbols
    ['A', 'B']
    """

    def __init__(self, symbols: list[str], costs: list[float], max_gross: list[float]) -> None:
        self.symbols = sorted(set(symbols))
        n_var, n_sym = len(costs), len(self.symbols)
        self.costs = [float(c) / 1e4 for c in costs]
        self.max_gross = [float(g) for g in max_gross]
        self._cost = np.array(self.costs)[:, None, None]
        self._cap = np.array(self.max_gross)[:, None]
        self._last_w = np.zeros((n_var, n_sym))
        self._last_c = np.full(n_sym, np.nan)
        self._prev_w = np.zeros((n_var, n_sym))
        self._prev_dw = np.zeros((n_var, n_sym))
        self._equity = np.ones(n_var)
        self._last_ts: int | None = None
        self.buffer: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def push(self, symbol: str, ts: np.ndarray, weights: np.ndarray, close: np.ndarray) -> bool:
        """Buffer one symbol's batch (``weights``: variants x bars); False when that symbol
        already has a batch waiting (the replay is not aligned: :meth:`split`)."""
        if symbol in self.buffer:
            return False
        self.buffer[symbol] = (ts, weights, close)
        return True

    def ready(self) -> bool:
        """Every symbol has a batch waiting, all over the same bar times.

        >>> sp = StackedPortfolio(["A"], [0.0], [1.0])
        >>> sp.ready(), sp.push("A", np.arange(2), np.ones((1, 2)), np.ones(2)), sp.ready()
        (False, True, True)
        """
        if len(self.buffer) != len(self.symbols):
            return False
        first = self.buffer[self.symbols[0]][0]
        return all(len(b[0]) == len(first) and np.array_equal(b[0], first)
                   for b in self.buffer.values())

    def process(self) -> Stacked:
        """Every variant's portfolio over the waiting batches (call when :meth:`ready`)."""
        parts = [self.buffer.pop(s) for s in self.symbols]
        timeline = parts[0][0]
        raw_w = np.stack([p[1] for p in parts], axis=1).astype(np.float64, copy=False)
        close = np.stack([p[2] for p in parts]).astype(np.float64, copy=False)

        scratch = np.abs(raw_w)
        gross_raw = _sum_symbols(scratch)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.where(gross_raw > self._cap, self._cap / gross_raw, 1.0)
        weight = raw_w * scale[:, None, :]  # x * 1.0 == x: uncapped bars keep their bits

        moved = np.empty_like(close)  # shared by every variant
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(close[:, :1], self._last_c[:, None], out=moved[:, :1])
            np.divide(close[:, 1:], close[:, :-1], out=moved[:, 1:])
        moved -= 1.0
        moved[np.isnan(moved)] = 0.0
        dw = np.empty_like(weight)
        np.subtract(weight[:, :, :1], self._prev_w[:, :, None], out=dw[:, :, :1])
        np.subtract(weight[:, :, 1:], weight[:, :, :-1], out=dw[:, :, 1:])
        np.abs(dw, out=dw)
        contrib = np.empty_like(weight)
        np.multiply(self._prev_w[:, :, None], moved[None, :, :1], out=contrib[:, :, :1])
        np.multiply(weight[:, :, :-1], moved[None, :, 1:], out=contrib[:, :, 1:])
        if any(self.costs):
            shifted = np.empty_like(dw)
            shifted[:, :, 0] = self._prev_dw
            shifted[:, :, 1:] = dw[:, :, :-1]
            contrib -= self._cost * shifted  # x - 0.0 == x for a variant without cost

        returns = _sum_symbols(contrib)
        turnover = _sum_symbols(dw)
        gross = _sum_symbols(np.abs(weight, out=scratch))
        growth = np.empty((len(returns), len(timeline) + 1))
        growth[:, 0] = self._equity
        np.add(returns, 1.0, out=growth[:, 1:])
        equity = np.multiply.accumulate(growth, axis=1)[:, 1:]

        self._last_w = raw_w[:, :, -1].copy()
        self._last_c = close[:, -1].copy()
        self._prev_w = weight[:, :, -1].copy()
        self._prev_dw = dw[:, :, -1].copy()
        self._equity = equity[:, -1].copy()
        self._last_ts = int(timeline[-1])
        return Stacked(timeline.astype(np.int64, copy=False), returns, equity, turnover, gross)

    def split(self) -> list[Portfolio]:
        """One :class:`Portfolio` per variant carrying this state on (without per-symbol
        rows), the waiting batches pushed into them."""
        out = []
        for v, (cost, cap) in enumerate(zip(self.costs, self.max_gross, strict=True)):
            p = Portfolio(self.symbols, cost * 1e4, cap)
            p.cost = cost  # the same float, not a round trip through basis points
            p.rows = False
            p._last_w = self._last_w[v].copy()
            p._last_c = self._last_c.copy()
            p._prev_w = self._prev_w[v].copy()
            p._prev_dw = self._prev_dw[v].copy()
            p._equity = float(self._equity[v])
            p._last_ts = self._last_ts
            if self._last_ts is not None:
                p._drained = self._last_ts
            for symbol, (ts, weights, close) in self.buffer.items():
                p.push(SignalBatch(symbol, ts, weights[v], close))
            out.append(p)
        self.buffer.clear()
        return out
