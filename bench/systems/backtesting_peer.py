"""backtesting.py (one symbol): a per-bar Python loop, whole shares of 1e10 cash, trades on
the close. Input: :func:`backtesting_frame`.
"""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pandas as pd
import talib
from backtesting import Backtest
from backtesting import Strategy as BtStrategy

from bench.common import Data, frames


def _backtesting_class(name: str) -> type[BtStrategy]:
    # backtesting.py starts calling next() one bar after every indicator is defined, which
    # would skip a signal on that first bar: warm-up NaNs get a value that triggers nothing
    def rolling(fn: str, n: int, fill: float):
        return lambda x: getattr(pd.Series(x).rolling(n), fn)().fillna(fill).to_numpy()

    def filled(fn, fill: float):
        return lambda *xs: np.nan_to_num(fn(*xs), nan=fill)

    class Sma(BtStrategy):
        def init(self):
            self.fast = self.I(rolling("mean", 10, 0.0), self.data.Close)
            self.slow = self.I(rolling("mean", 50, np.inf), self.data.Close)

        def next(self):
            want = self.fast[-1] > self.slow[-1]
            if want and not self.position:
                self.buy()
            elif not want and self.position:
                self.position.close()

    class Latched(BtStrategy):
        def step(self) -> tuple[bool, bool]:
            raise NotImplementedError

        def next(self):
            enter, leave = self.step()
            if enter and not self.position:
                self.buy()
            elif leave and not enter and self.position:
                self.position.close()

    class Rsi(Latched):
        def init(self):
            self.rsi = self.I(filled(talib.RSI, 40.0), self.data.Close, 14)

        def step(self):
            return self.rsi[-1] < 30, self.rsi[-1] > 50

    class Brk(Latched):
        def init(self):
            self.high = self.I(rolling("max", 20, np.inf), self.data.High)
            self.atr = self.I(filled(talib.ATR, np.inf), self.data.High, self.data.Low,
                              self.data.Close, 14)

        def step(self):
            c = self.data.Close[-1]
            return c > self.high[-2], c < self.high[-1] - 3.0 * self.atr[-1]

    return {"sma_cross": Sma, "rsi_reversion": Rsi, "breakout": Brk}[name]


def backtesting_frame(data: Data) -> pd.DataFrame:
    """backtesting.py's input for a one-symbol ``data``: a frame of Open/High/Low/Close/Volume."""
    f = frames(data)
    (sym,) = list(data)
    return f["close"][[sym]].rename(columns={sym: "Close"}).assign(
        Open=f["open"][sym], High=f["high"][sym], Low=f["low"][sym], Volume=f["volume"][sym]
    )


def run_backtesting(name: str, df: pd.DataFrame) -> tuple[np.ndarray, dict[str, float]]:
    """Strategy ``name`` over ``df``: per-bar returns (from its equity curve), total return."""
    with warnings.catch_warnings(), open(os.devnull, "w") as quiet:
        warnings.simplefilter("ignore")
        err, sys.stderr = sys.stderr, quiet  # its progress bar
        bt = Backtest(
            df,
            _backtesting_class(name),
            cash=1e10,
            commission=0.0,
            trade_on_close=True,
            finalize_trades=False,
        )
        try:
            stats = bt.run()
        finally:
            sys.stderr = err
    equity = stats["_equity_curve"]["Equity"].to_numpy()
    r = np.zeros(len(equity))
    r[1:] = equity[1:] / equity[:-1] - 1.0
    return r, {"total_return": equity[-1] / equity[0] - 1.0}
