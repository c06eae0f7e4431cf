"""backtrader: a per-bar Python loop, fractional sizes, cheat-on-close, every symbol
rebalanced to its weight. Input: :func:`bench.common.frames`.
"""

from __future__ import annotations

from typing import Any

import backtrader as bt
import numpy as np


def run_backtrader(name: str, f: dict[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
    """Strategy ``name`` over frames ``f``: per-bar returns (broker value), total return."""
    class Strat(bt.Strategy):
        def __init__(self):
            self.values: list[float] = []
            if name == "sma_cross":
                self.sig = [
                    (bt.ind.SMA(d.close, period=10), bt.ind.SMA(d.close, period=50))
                    for d in self.datas
                ]
            elif name == "rsi_reversion":
                self.sig = [bt.ind.RSI(d.close, period=14, safediv=True) for d in self.datas]
            else:
                self.sig = [
                    (bt.ind.Highest(d.high, period=20), bt.ind.ATR(d, period=14))
                    for d in self.datas
                ]
            self.held = [0.0] * len(self.datas)
            self.last = [0.0] * len(self.datas)

        def prenext(self):
            self.values.append(self.broker.getvalue())

        def next(self):
            self.values.append(self.broker.getvalue())
            raw = []
            for i, d in enumerate(self.datas):
                if name == "sma_cross":
                    fast, slow = self.sig[i]
                    raw.append(1.0 if fast[0] > slow[0] else 0.0)
                    continue
                if name == "rsi_reversion":
                    r = self.sig[i][0]
                    enter, leave = r < 30, r > 50
                else:
                    high, atr = self.sig[i]
                    c = d.close[0]
                    enter = len(high) > 1 and c > high[-1]
                    leave = c < high[0] - 3.0 * atr[0]
                self.held[i] = 1.0 if enter else 0.0 if leave else self.held[i]
                raw.append(self.held[i])
            gross = sum(raw)
            scale = 1.0 / gross if gross > 1.0 else 1.0
            value = self.broker.getvalue()
            orders = []
            for i, d in enumerate(self.datas):
                target = raw[i] * scale
                # one symbol: rebalance only on change; several: every bar (constant weights)
                if target != self.last[i] or (len(self.datas) > 1 and target):
                    held = self.getposition(d).size * d.close[0]
                    orders.append((target * value - held, i, d, target))
                self.last[i] = target
            # sells first, they free the cash; buys a hair (1e-9) under it, so that rounding
            # never makes the broker refuse a fill
            for delta, _, d, target in sorted(orders):
                if not target:
                    self.close(d)
                elif delta < 0:
                    self.sell(d, size=-delta / d.close[0])
                elif delta > 0:
                    self.buy(d, size=delta / d.close[0] * (1.0 - 1e-9))

    cerebro = bt.Cerebro(stdstats=False)
    for sym in f["close"].columns:
        df = f["close"][[sym]].rename(columns={sym: "close"}).assign(
            open=f["open"][sym], high=f["high"][sym], low=f["low"][sym], volume=f["volume"][sym]
        )
        df.index = df.index.tz_localize(None)
        cerebro.adddata(bt.feeds.PandasData(dataname=df, timeframe=bt.TimeFrame.Minutes), name=sym)
    cerebro.addstrategy(Strat)
    cerebro.broker.setcash(1e6)
    cerebro.broker.set_coc(True)
    cerebro.broker.set_checksubmit(False)
    (strat,) = cerebro.run()
    equity = np.asarray(strat.values)
    r = np.zeros(len(equity))
    r[1:] = equity[1:] / equity[:-1] - 1.0
    return r, {"total_return": equity[-1] / 1e6 - 1.0}
