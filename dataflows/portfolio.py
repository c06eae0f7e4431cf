"""Automatic returns: target weights and prices in, portfolio returns and equity out.

For each bar t+1 of the portfolio's timeline (the union of its symbols' bar times):

    r(t+1) = sum_i w_i(t) * (close_i(t+1) / close_i(t) - 1)
             - cost_bps / 1e4 * sum_i |w_i(t) - w_i(t-1)|

A weight decided at bar t is held until the symbol's next bar; a symbol without a bar at
some time contributes nothing then (its price did not move). Negative weights are shorts (the
formula is the same; turnover counts both sides). Weights are scaled down where their gross
``sum_i |w_i|`` exceeds ``max_gross``, then again where their net ``|sum_i w_i|`` exceeds
``max_net``. A decision at t never sees bar t+1.

Per-symbol signal batches arrive in any interleaving; :class:`Portfolio` processes a time
only once every symbol has reached it (or at the end), and every computation is either
row-local or a strictly sequential accumulation with carried state, so any batching of the
input gives bit-identical output.

>>> import numpy as np
>>> p = Portfolio(["A"], cost_bps=0.0, max_gross=1.0)
>>> p.push(SignalBatch("A", np.array([1, 2, 3]), np.array([1.0, 1.0, 0.0]),
...                    np.array([100.0, 110.0, 99.0])))
>>> out = p.drain()
>>> out.returns.round(6).tolist()
[0.0, 0.1, -0.1]
>>> out.equity.round(6).tolist()
[1.0, 1.1, 0.99]
"""

from __future__ import annotations

import numpy as np

from dataflows.execution import Execution
from dataflows.portfolio_general import GeneralExecution
from dataflows.portfolio_rows import (
    _INF,
    PortfolioBatch,
    SignalBatch,
    SymbolRows,
    _add_prices,
    _compound,
    _ffill,
    _opens,
    _repeat,
    _shifted,
    _sum_rows,
)


class Portfolio(GeneralExecution):
    """Incremental returns of one strategy over its universe (see the module docstring).

    >>> p = Portfolio(["A", "B"], cost_bps=10.0, max_gross=1.0)
    >>> p.push(SignalBatch("A", np.array([1, 2]), np.array([1.0, 1.0]), np.array([10.0, 11.0])))
    >>> p.drain() is None        # B has not reached t=1 yet
    True
    >>> p.push(SignalBatch("B", np.array([1, 2]), np.array([1.0, 0.0]), np.array([5.0, 5.0])))
    >>> out = p.drain()
    >>> out.gross.tolist()       # 1 + 1 scaled to max_gross 1.0, then 1 + 0
    [1.0, 1.0]
    >>> round(float(out.returns[1]), 6)   # 0.5*10% - 10bp of turnover 1.0 at t=1
    0.049
    """

    _drained: int = np.iinfo(np.int64).min
    """The horizon of the last drain (also the default of a portfolio restored from a recovery
    snapshot written before this field existed)."""
    ex: Execution = Execution()
    """The execution rule, slippage and sizing (:mod:`dataflows.execution`); the default
    (trade at the close, no slippage, no sizing) takes the fast paths below."""
    rows: bool = True
    """Whether a batch of many times carries its per-symbol rows; a sweep, which keeps only
    the portfolio's series, sets it False on its portfolios (``symbol_rows`` is then empty)."""

    def __init__(
        self,
        symbols: list[str],
        cost_bps: float = 0.0,
        max_gross: float = 1.0,
        prices: bool = False,
        max_net: float = float("inf"),
        execution: Execution | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a portfolio needs at least one symbol")
        self.symbols = sorted(set(symbols))
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.cost = float(cost_bps) / 1e4
        self.max_gross = float(max_gross)
        self.max_net = float(max_net)
        self.prices = prices
        n = len(self.symbols)
        self._pending: list[list[SignalBatch]] = [[] for _ in range(n)]
        self._reached = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self._seen = np.zeros(n, dtype=bool)
        self._last_w = np.zeros(n)
        self._last_c = np.full(n, np.nan)
        self._prev_w = np.zeros(n)
        self._prev_dw = np.zeros(n)
        self._equity = 1.0
        self._last_ts: int | None = None
        self._drained = Portfolio._drained
        self.ex = execution or Execution()
        if not self.ex.default:
            self._slip = np.zeros(n)  # each symbol's slippage at the last column
            self._held = np.zeros(n)  # next_open: the weight filled (held now)
            self._pend = np.zeros(n)  # next_open: decided at the last bar, filled at the next
            self._pend_slip = np.zeros(n)
            self._sized = np.zeros(n)  # sizing: the weight held after the last own bar
            self._tails: list[np.ndarray] = [np.empty(0) for _ in range(n)]

    def push(self, batch: SignalBatch) -> None:
        """Buffer one symbol's signal batch (in time order per symbol).

        >>> Portfolio(["A"], 0.0, 1.0).push(SignalBatch("B", np.array([1]), np.ones(1),
        ...                                             np.ones(1)))
        Traceback (most recent call last):
        ...
        KeyError: "symbol 'B' is not in this portfolio"
        """
        i = self.index.get(batch.symbol)
        if i is None:
            raise KeyError(f"symbol {batch.symbol!r} is not in this portfolio")
        if len(batch.ts) == 0:
            return
        self._pending[i].append(batch)
        self._reached[i] = int(batch.ts[-1])
        self._seen[i] = True

    def drain(self, final: bool = False) -> PortfolioBatch | None:
        """Process every buffered time that all symbols have reached (all of them if
        ``final``); None when there is nothing to process yet.

        >>> p = Portfolio(["A", "B"], 0.0, 1.0)
        >>> p.push(SignalBatch("A", np.array([1, 2]), np.ones(2), np.array([1.0, 2.0])))
        >>> p.drain() is None                    # B has not reached any time yet
        True
        >>> len(p.drain(final=True))
        2
        """
        if final:
            horizon = np.iinfo(np.int64).max
        elif self._seen.all():
            horizon = int(self._reached.min())
            if horizon <= self._drained:
                # the slowest symbol has not moved since the last drain, so nothing new is
                # complete: with many symbols most pushes end here, without touching buffers
                return None
            self._drained = horizon
        else:
            return None
        taken: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] = []
        opens: list[np.ndarray | None] = []
        for i, parts in enumerate(self._pending):
            if not parts:
                taken.append(None)
                opens.append(None)
                continue
            ts = np.concatenate([p.ts for p in parts]) if len(parts) > 1 else parts[0].ts
            w = np.concatenate([p.weight for p in parts]) if len(parts) > 1 else parts[0].weight
            c = np.concatenate([p.close for p in parts]) if len(parts) > 1 else parts[0].close
            o = None
            if self.prices or not self.ex.default:
                o = np.concatenate([_opens(p) for p in parts])
            cut = int(np.searchsorted(ts, horizon, side="right"))
            taken.append((ts[:cut], w[:cut], c[:cut]) if cut else None)
            opens.append(o[:cut] if o is not None and cut else None)
            self._pending[i] = (
                [
                    SignalBatch(
                        self.symbols[i], ts[cut:], w[cut:], c[cut:], None if o is None else o[cut:]
                    )
                ]
                if cut < len(ts)
                else []
            )
        chunks = [t[0] for t in taken if t is not None]
        if not chunks:
            return None
        first = chunks[0]
        if all(len(c) == len(first) for c in chunks) and all(
            np.array_equal(c, first) for c in chunks[1:]
        ):
            timeline = first  # symbols in step (aligned replay): no union to sort
        else:
            timeline = np.unique(np.concatenate(chunks))
        if not self.ex.default:
            out = self._process_general(timeline, taken, opens)
        elif len(timeline) == 1:
            out = self._process_row(int(timeline[0]), taken)
        else:
            out = self._process(timeline, taken)
        if self.prices:
            _add_prices(out, taken, opens)
        return out

    def _process_row(
        self, t: int, taken: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None]
    ) -> PortfolioBatch:
        """One time (live feeds): the float operations of :meth:`_process`, in the same
        order, on Python floats, so the result is bit-identical without array overhead."""
        raw = self._last_w.tolist()
        close = self._last_c.tolist()
        present = []
        for i, part in enumerate(taken):
            if part is not None:
                raw[i], close[i] = float(part[1][0]), float(part[2][0])
                present.append(i)
        gross_raw = abs(raw[0])
        for w in raw[1:]:
            gross_raw += abs(w)
        scale = self.max_gross / gross_raw if gross_raw > self.max_gross else 1.0
        net_f = 1.0
        if self.max_net != _INF:
            net = raw[0] * scale
            for w in raw[1:]:
                net += w * scale
            if abs(net) > self.max_net:
                net_f = self.max_net / abs(net)
        prev_w, prev_c, prev_dw = (
            self._prev_w.tolist(),
            self._last_c.tolist(),
            self._prev_dw.tolist(),
        )
        weight, dw, contrib = [], [], []
        for i in range(len(raw)):
            w = raw[i] * scale * net_f
            moved = close[i] / prev_c[i] - 1.0
            if moved != moved:
                moved = 0.0
            weight.append(w)
            dw.append(abs(w - prev_w[i]))
            contrib.append(prev_w[i] * moved - self.cost * prev_dw[i])
        ret, turn, gross = contrib[0], dw[0], abs(weight[0])
        for i in range(1, len(raw)):
            ret += contrib[i]
            turn += dw[i]
            gross += abs(weight[i])
        equity = self._equity * (ret + 1.0)

        self._last_w = np.array(raw)
        self._last_c = np.array(close)
        self._prev_w = np.array(weight)
        self._prev_dw = np.array(dw)
        self._equity = equity
        self._last_ts = t
        idx = np.array(present, dtype=np.int32)
        return PortfolioBatch(
            ts=np.array([t], dtype=np.int64),
            returns=np.array([ret]),
            equity=np.array([equity]),
            turnover=np.array([turn]),
            gross=np.array([gross]),
            symbols=self.symbols,
            symbol_rows={
                "ts": np.full(len(idx), t, dtype=np.int64),
                "symbol": idx,
                "weight": np.array(weight)[idx],
                "return": np.array(contrib)[idx],
                "equity": np.full(len(idx), equity),
                "close": np.array(close)[idx],
            },
        )

    def _process(
        self,
        timeline: np.ndarray,
        taken: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None],
    ) -> PortfolioBatch:
        # matrices are symbol-major (one row per symbol, one column per bar), so sums over
        # symbols add contiguous rows
        n_rows, n_sym = len(timeline), len(self.symbols)
        present = np.zeros((n_sym, n_rows), dtype=bool)
        if n_sym == 1 and taken[0] is not None and len(taken[0][0]) == n_rows:
            # one symbol with a bar at every time: nothing to align or fill
            present[0] = True
            raw_w = taken[0][1].reshape(1, n_rows)
            close = taken[0][2].reshape(1, n_rows)
        elif all(part is not None and len(part[0]) == n_rows for part in taken):
            # every symbol has a bar at every time: rows stacked, nothing to fill
            present[:] = True
            raw_w = np.stack([p[1] for p in taken], dtype=np.float64)  # type: ignore[index]
            close = np.stack([p[2] for p in taken], dtype=np.float64)  # type: ignore[index]
        else:
            raw_w = np.empty((n_sym, n_rows))
            close = np.empty((n_sym, n_rows))
            for i, part in enumerate(taken):
                if part is None:
                    raw_w[i] = self._last_w[i]
                    close[i] = self._last_c[i]
                    continue
                ts, w, c = part
                if len(ts) == n_rows:  # a bar at every time of the timeline (ts is in it)
                    present[i] = True
                    raw_w[i] = w
                    close[i] = c
                    continue
                pos = np.searchsorted(timeline, ts)
                present[i, pos] = True
                full_w = np.zeros(n_rows)
                full_w[pos] = w
                full_c = np.zeros(n_rows)
                full_c[pos] = c
                raw_w[i] = _ffill(full_w, present[i], self._last_w[i])
                close[i] = _ffill(full_c, present[i], self._last_c[i])

        scratch = np.abs(raw_w)  # reused below for |weight|
        gross_raw = _sum_rows(scratch)
        capped = gross_raw > self.max_gross
        if capped.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                scale = np.where(capped, self.max_gross / gross_raw, 1.0)
            weight = raw_w * scale
        else:
            weight = raw_w  # every scale would be 1.0: the same values
        if self.max_net != _INF:
            net = np.abs(_sum_rows(weight))
            over = net > self.max_net
            if over.any():
                with np.errstate(divide="ignore", invalid="ignore"):
                    weight = weight * np.where(over, self.max_net / net, 1.0)

        # against each bar's previous weights and closes (the carried bar, then the bars):
        # the same element-wise operations as on shifted copies, without making them
        moved = np.empty_like(close)
        with np.errstate(divide="ignore", invalid="ignore"):
            np.divide(close[:, :1], self._last_c[:, None], out=moved[:, :1])
            np.divide(close[:, 1:], close[:, :-1], out=moved[:, 1:])
        moved -= 1.0
        nan = np.isnan(moved)
        if nan.any():
            moved[nan] = 0.0
        dw = np.empty_like(weight)
        np.subtract(weight[:, :1], self._prev_w[:, None], out=dw[:, :1])
        np.subtract(weight[:, 1:], weight[:, :-1], out=dw[:, 1:])
        np.abs(dw, out=dw)
        contrib = moved  # prev_w * moved, in place
        np.multiply(self._prev_w[:, None], contrib[:, :1], out=contrib[:, :1])
        np.multiply(weight[:, :-1], contrib[:, 1:], out=contrib[:, 1:])
        if self.cost:
            contrib -= self.cost * _shifted(dw, self._prev_dw)

        returns = _sum_rows(contrib)
        turnover = _sum_rows(dw)
        gross = _sum_rows(np.abs(weight, out=scratch))
        equity = _compound(returns, self._equity)

        self._last_w = raw_w[:, -1].copy()
        self._last_c = close[:, -1].copy()
        self._prev_w = weight[:, -1].copy()
        self._prev_dw = dw[:, -1].copy()
        self._equity = float(equity[-1])
        self._last_ts = int(timeline[-1])

        # per-symbol rows, ordered by time then symbol: built when first read
        symbol_rows = SymbolRows()
        if self.rows and present.all():
            symbol_rows = SymbolRows(make={
                "ts": lambda: _repeat(timeline, n_sym),
                "symbol": lambda: (
                    np.tile(np.arange(n_sym, dtype=np.int32), n_rows)
                    if n_sym > 1
                    else np.zeros(n_rows, dtype=np.int32)
                ),
                "weight": lambda: weight.T.reshape(-1),
                "return": lambda: contrib.T.reshape(-1),
                "equity": lambda: _repeat(equity, n_sym),
                "close": lambda: close.T.reshape(-1),  # one symbol: a view of the bars'
            })
        elif self.rows:
            at = present.T  # (row, symbol) of each symbol's own bars, in time order
            symbol_rows = SymbolRows(make={
                "ts": lambda: timeline[np.nonzero(at)[0]],
                "symbol": lambda: np.nonzero(at)[1].astype(np.int32),
                "weight": lambda: weight.T[at],
                "return": lambda: contrib.T[at],
                "equity": lambda: np.broadcast_to(equity[:, None], at.shape)[at],
                "close": lambda: close.T[at],
            })
        return PortfolioBatch(
            ts=timeline.astype(np.int64, copy=False),
            returns=returns,
            equity=equity,
            turnover=turnover,
            gross=gross,
            symbols=self.symbols,
            symbol_rows=symbol_rows,
        )
