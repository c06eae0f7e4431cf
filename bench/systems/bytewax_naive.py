"""Bytewax with a plain per-bar ``stateful_map``: what a naive streaming port would do (the
strategy state updated one bar at a time in Python). Input: :func:`bytewax_items`.

>>> from bench.common import make_data
>>> items = bytewax_items(make_data(2, 60))
>>> len(items), len(run_bytewax_naive("sma_cross", items, 2)[0])
(120, 60)
"""

from __future__ import annotations

from collections import deque

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from bench.common import Data


class _BarSignal:
    """One symbol's strategy state, updated one bar at a time in plain Python."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.closes: deque[float] = deque(maxlen=50)
        self.highs: deque[float] = deque(maxlen=21)
        self.prev_close: float | None = None
        self.gains: list[float] = []
        self.losses: list[float] = []
        self.trs: list[float] = []
        self.avg_gain = self.avg_loss = self.atr = float("nan")
        self.held = 0.0

    @staticmethod
    def _wilder(avg: float, seed: list[float], x: float, n: int) -> float:
        if avg == avg:
            return avg * (1.0 - 1.0 / n) + x / n
        seed.append(x)
        return sum(seed) / n if len(seed) == n else float("nan")

    def step(self, high: float, low: float, close: float) -> float:
        prev, self.prev_close = self.prev_close, close
        if self.name == "sma_cross":
            self.closes.append(close)
            if len(self.closes) < 50:
                return 0.0
            window = list(self.closes)
            return 1.0 if sum(window[-10:]) / 10 > sum(window) / 50 else 0.0
        if prev is None:
            if self.name == "breakout":
                self.highs.append(high)
            return self.held
        if self.name == "rsi_reversion":
            change = close - prev
            self.avg_gain = self._wilder(self.avg_gain, self.gains, max(change, 0.0), 14)
            self.avg_loss = self._wilder(self.avg_loss, self.losses, max(-change, 0.0), 14)
            total = self.avg_gain + self.avg_loss
            if total == total:
                rsi = 0.0 if total == 0 else 100.0 * self.avg_gain / total
                enter, leave = rsi < 30, rsi > 50
                self.held = 1.0 if enter else 0.0 if leave else self.held
            return self.held
        tr = max(high - low, abs(high - prev), abs(low - prev))
        self.atr = self._wilder(self.atr, self.trs, tr, 14)
        self.highs.append(high)
        if len(self.highs) == 21:
            window = list(self.highs)
            prior, now = max(window[:-1]), max(window[1:])
            enter = close > prior
            leave = self.atr == self.atr and close < now - 3.0 * self.atr
            self.held = 1.0 if enter else 0.0 if leave else self.held
        return self.held


class _BarPortfolio:
    """Collects every symbol's weight for a time, then derives that time's return."""

    def __init__(self, n_symbols: int) -> None:
        self.n = n_symbols
        self.rows: dict[int, dict[str, tuple[float, float]]] = {}
        self.last_w: dict[str, float] = {}
        self.last_c: dict[str, float] = {}

    def add(self, ts: int, symbol: str, raw: float, close: float) -> list[tuple[int, float]]:
        row = self.rows.setdefault(ts, {})
        row[symbol] = (raw, close)
        if len(row) < self.n:
            return []
        del self.rows[ts]
        ret = 0.0
        for s in sorted(row):
            if s in self.last_w:
                ret += self.last_w[s] * (row[s][1] / self.last_c[s] - 1.0)
        gross = sum(w for w, _ in row.values())
        scale = 1.0 / gross if gross > 1.0 else 1.0
        for s, (w, c) in row.items():
            self.last_w[s], self.last_c[s] = w * scale, c
        return [(ts, ret)]


def bytewax_items(data: Data) -> list[tuple[str, tuple[int, float, float, float]]]:
    """Per-bar items in time order across symbols (the naive port's input)."""
    syms = sorted(data)
    cols = {s: [data[s][c].tolist() for c in ("ts", "high", "low", "close")] for s in syms}
    n = len(data[syms[0]]["ts"])
    return [(s, (cols[s][0][i], cols[s][1][i], cols[s][2][i], cols[s][3][i]))
            for i in range(n) for s in syms]


def run_bytewax_naive(
    name: str, items: list[tuple[str, tuple[int, float, float, float]]], n_symbols: int
) -> tuple[np.ndarray, dict[str, float]]:
    """Strategy ``name`` over per-bar ``items``: per-bar portfolio returns (no metrics)."""
    def signal(state: _BarSignal | None, bar):
        state = state or _BarSignal(name)
        ts, high, low, close = bar
        return state, (ts, state.step(high, low, close), close)

    def portfolio(state: _BarPortfolio | None, item):
        state = state or _BarPortfolio(n_symbols)
        symbol, (ts, w, close) = item
        return state, state.add(ts, symbol, w, close)

    out: list[tuple[int, float]] = []
    flow = Dataflow("naive")
    bars = op.input("in", flow, TestingSource(items))
    weights = op.stateful_map("signal", op.key_on("by_symbol", bars, lambda kv: kv[0]),
                              lambda s, kv: signal(s, kv[1]))
    together = op.map("one_key", weights, lambda kv: ("all", kv))
    rows = op.stateful_flat_map("portfolio", together, portfolio)
    op.output("out", op.map("value", rows, lambda kv: kv[1]), TestingSink(out))
    run_main(flow)
    return np.array([r for _, r in out]), {}
