"""The portfolio's step under a non-default execution (a rule, slippage or sizing: see
:mod:`dataflows.execution`), as a mixin of :class:`dataflows.portfolio.Portfolio` (pure
numpy: no I/O). Every step is column-local or a sequential accumulation with carried
state, so any batching gives the same output.

>>> from dataflows.portfolio import Portfolio
>>> issubclass(Portfolio, GeneralExecution)
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dataflows.execution import rolling_sigma, size_weights
from dataflows.portfolio_rows import (
    _INF,
    PortfolioBatch,
    _compound,
    _ffill,
    _shifted,
    _sum_rows,
)


class GeneralExecution:
    """The general path of the portfolio step (its state lives on the portfolio)."""

    ex: Any
    symbols: list[str]
    max_gross: float
    max_net: float
    cost: float
    rows: bool
    _tails: Any
    _last_w: Any
    _last_c: Any
    _slip: Any
    _sized: Any
    _prev_w: Any
    _prev_dw: Any
    _held: Any
    _pend: Any
    _pend_slip: Any
    _equity: float
    _last_ts: int

    def _slips(self, i: int, close: np.ndarray) -> np.ndarray:
        """Symbol ``i``'s slippage fraction at each of its bars (decided there)."""
        ex = self.ex
        s = np.full(len(close), ex.spread_bps / 2e4)
        if ex.slippage_vol:
            sigma, self._tails[i] = rolling_sigma(close, self._tails[i], ex.vol_window)
            s += ex.slippage_vol * sigma
        return s

    def _process_general(
        self,
        timeline: np.ndarray,
        taken: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None],
        opens: list[np.ndarray | None],
    ) -> PortfolioBatch:
        """The bars of ``timeline`` under a non-default execution (a rule, slippage or
        sizing: see :mod:`dataflows.execution`). Every step is column-local or a sequential
        accumulation with carried state, so any batching gives the same output."""
        ex = self.ex
        n_rows, n_sym = len(timeline), len(self.symbols)
        present = np.zeros((n_sym, n_rows), dtype=bool)
        raw_w = np.empty((n_sym, n_rows))
        close = np.empty((n_sym, n_rows))
        open_ = np.empty((n_sym, n_rows))
        slip = np.zeros((n_sym, n_rows))
        cols: list[np.ndarray] = []
        for i, part in enumerate(taken):
            if part is None:
                raw_w[i], close[i], open_[i] = self._last_w[i], self._last_c[i], self._last_c[i]
                slip[i] = self._slip[i]
                cols.append(np.empty(0, dtype=np.int64))
                continue
            ts, w, c = part
            o = opens[i] if opens[i] is not None else c
            pos = np.searchsorted(timeline, ts)
            cols.append(pos)
            present[i, pos] = True
            full = np.zeros((4, n_rows))
            full[0, pos], full[1, pos], full[2, pos] = w, c, o
            full[3, pos] = self._slips(i, c)
            raw_w[i] = _ffill(full[0], present[i], self._last_w[i])
            close[i] = _ffill(full[1], present[i], self._last_c[i])
            # no bar: the price did not move (the open is the close carried)
            open_[i] = np.where(present[i], full[2], close[i])
            slip[i] = _ffill(full[3], present[i], self._slip[i])

        gross_raw = _sum_rows(np.abs(raw_w))
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = raw_w * np.where(gross_raw > self.max_gross, self.max_gross / gross_raw, 1.0)
            if self.max_net != _INF:
                net = np.abs(_sum_rows(weight))
                weight = weight * np.where(net > self.max_net, self.max_net / net, 1.0)
        if ex.sizing:  # per symbol, at its own bars; held between them
            for i, pos in enumerate(cols):
                if not len(pos):
                    weight[i] = self._sized[i]
                    continue
                carried = float(self._sized[i])
                full = np.zeros(n_rows)
                full[pos], self._sized[i] = size_weights(
                    ex, self.symbols[i], weight[i, pos], close[i, pos], carried)
                weight[i] = _ffill(full, present[i], carried)
        prev_c = _shifted(close, self._last_c)
        fee = self.cost
        if ex.rule == "close":
            moved = close / prev_c - 1.0
            moved[np.isnan(moved)] = 0.0
            dw = np.abs(weight - _shifted(weight, self._prev_w))
            contrib = (_shifted(weight, self._prev_w) * moved
                       - (fee + _shifted(slip, self._slip)) * _shifted(dw, self._prev_dw))
            traded = dw
        else:
            new = np.empty_like(weight)  # the weight held after the bar's open
            old = np.empty_like(weight)  # the weight held before it
            fill_slip = np.zeros_like(weight)
            for i, pos in enumerate(cols):
                if not len(pos):
                    new[i] = old[i] = self._held[i]
                    continue
                d = weight[i, pos]
                s = slip[i, pos]
                n_at = np.concatenate([[self._pend[i]], d[:-1]])
                o_at = np.concatenate([[self._held[i]], n_at[:-1]])
                full = np.zeros((3, n_rows))
                full[0, pos], full[1, pos] = n_at, o_at
                full[2, pos] = np.concatenate([[self._pend_slip[i]], s[:-1]])
                new[i] = _ffill(full[0], present[i], self._held[i])
                old[i] = np.where(present[i], full[1], new[i])
                fill_slip[i] = full[2]
                self._held[i] = n_at[-1]
                self._pend[i], self._pend_slip[i] = d[-1], s[-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                gap = open_ / prev_c - 1.0
                intra = close / open_ - 1.0
            gap[np.isnan(gap)] = 0.0
            intra[np.isnan(intra)] = 0.0
            traded = np.abs(new - old)
            first = old * gap  # previous close to the open, on the old weight
            at_open = 1.0 + _sum_rows(first)
            contrib = first + at_open * (new * intra - (fee + fill_slip) * traded)

        returns = _sum_rows(contrib)
        turnover = _sum_rows(traded)
        gross = _sum_rows(np.abs(weight))
        equity = _compound(returns, self._equity)

        self._last_w = raw_w[:, -1].copy()
        self._last_c = close[:, -1].copy()
        self._prev_w = weight[:, -1].copy()
        self._prev_dw = traded[:, -1].copy() if ex.rule == "close" else self._prev_dw
        self._slip = slip[:, -1].copy()
        self._equity = float(equity[-1])
        self._last_ts = int(timeline[-1])

        symbol_rows: dict[str, np.ndarray] = {}
        if self.rows:
            row, sym = np.nonzero(present.T)
            symbol_rows = {
                "ts": timeline[row],
                "symbol": sym.astype(np.int32),
                "weight": weight[sym, row],
                "return": contrib[sym, row],
                "equity": equity[row],
                "close": close[sym, row],
                "slip": slip[sym, row],
            }
        return PortfolioBatch(
            ts=timeline.astype(np.int64, copy=False),
            returns=returns,
            equity=equity,
            turnover=turnover,
            gross=gross,
            symbols=self.symbols,
            symbol_rows=symbol_rows,
        )
