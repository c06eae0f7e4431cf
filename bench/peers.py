"""Replay speed against the peers, in one run: speed, scaling and memory.

    python bench/peers.py                 # full sizes (about 10 minutes on 2 cores)
    python bench/peers.py --quick         # small sizes, seconds: the test suite runs this
    python bench/peers.py --skip-memory --skip-scaling

One process generates seeded synthetic minute bars once and runs the same three strategies
(SMA(10)/SMA(50) cross; RSI(14) mean reversion, long below 30, flat above 50; 20-bar breakout
with a 3 x ATR(14) chandelier stop) through each system:

- qmtl, the full path (validation, fingerprint, returns, metrics, per-symbol rows), with the
  default batch size and with one bar per batch (on a subset, reported per bar);
- hand-written numpy doing the same math (scipy's ``lfilter`` for Wilder smoothing): the floor;
- vectorbt (indicators, ``Portfolio.from_orders`` at target percent, returns, metrics; numba
  warmed before timing);
- backtesting.py and backtrader (per-bar Python loops; on a subset, reported per bar);
- Bytewax with a plain per-bar ``stateful_map`` (what a naive streaming port would do).

Every system's per-bar returns are checked against qmtl's before any speed is reported. All
systems use qmtl's execution model: the target weight set at a bar's close is held to the next
close, fills at the close, fractional size, no cost; with more than one symbol each held
symbol gets ``1 / (number held)`` of capital, rebalanced every bar. backtesting.py sizes in
whole shares; with 1e10 of cash the part left in cash is below 1e-8 of equity, so its returns
are checked like the others (1e-9) and its final equity to 1e-6 relative. A failed check
stops the run with a non-zero exit.

Then scaling (qmtl with 1 and 2 Bytewax workers, and 2 Bytewax processes on 127.0.0.1: speed-up
and identical results) and memory (peak RSS of a streaming replay from the Parquet catalog as
history grows, each in a fresh process: see ``bench/memory.py``). Prints the tables and the
targets of issue 7, writes ``bench/results/peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from connectors.data.synthetic import generate_bars  # noqa: E402
from qmtl import Strategy, backtest, latch  # noqa: E402
from qmtl.core.intervals import periods_per_year  # noqa: E402

PPY = periods_per_year("1m")
RTOL_EQUITY = 1e-6
ATOL_RETURNS = 1e-9


class CheckFailed(AssertionError):
    """A peer's results disagree with qmtl's: no speed is reported for it."""


# -- the strategies, in qmtl --------------------------------------------------------------


class SmaCross(Strategy):
    """Long while SMA(10) is above SMA(50)."""

    interval = "1m"
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


class RsiReversion(Strategy):
    """Long from RSI(14) < 30 until RSI(14) > 50."""

    interval = "1m"
    n: int = 14

    def signal(self, bars):
        r = bars.close.rsi(self.n)
        return latch(r < 30, r > 50)


class Breakout(Strategy):
    """Long from a close above the prior 20-bar high until a close below the 20-bar high
    minus 3 ATR(14) (a chandelier stop)."""

    interval = "1m"
    n: int = 20
    atr_n: int = 14
    k: float = 3.0

    def signal(self, bars):
        high = bars.high.max(self.n)
        enter = bars.close > high.shift(1)
        leave = bars.close < high - self.k * bars.atr(self.atr_n)
        return latch(enter, leave)


STRATEGIES: dict[str, type[Strategy]] = {
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "breakout": Breakout,
}


# -- data -----------------------------------------------------------------------------------

Data = dict[str, dict[str, np.ndarray]]


def make_data(n_symbols: int, n_bars: int, seed: int = 7) -> Data:
    """Seeded synthetic minute bars, one series per symbol, on one timeline."""
    return {
        f"S{i:03d}": generate_bars(n_bars, interval="1m", seed=seed + i) for i in range(n_symbols)
    }


def head(data: Data, n_symbols: int, n_bars: int) -> Data:
    """The first ``n_symbols`` symbols' first ``n_bars`` bars (views)."""
    return {s: {k: v[:n_bars] for k, v in data[s].items()} for s in sorted(data)[:n_symbols]}


def matrices(data: Data) -> dict[str, np.ndarray]:
    """Column -> (bars, symbols) matrix, symbols sorted (the numpy floor's input)."""
    syms = sorted(data)
    return {
        c: np.column_stack([data[s][c] for s in syms])
        for c in ("open", "high", "low", "close", "volume")
    }


# -- the floor: hand-written numpy ----------------------------------------------------------


def np_sma(x: np.ndarray, n: int) -> np.ndarray:
    """Rolling mean by cumulative sums anchored at the first value (small magnitudes)."""
    anchor = x[0]
    cs = np.cumsum(x - anchor, axis=0)
    out = np.full_like(x, np.nan)
    out[n - 1] = cs[n - 1]
    out[n:] = cs[n:] - cs[:-n]
    out[n - 1 :] += n * anchor
    out[n - 1 :] /= n
    return out


def np_wilder(x: np.ndarray, n: int, start: int) -> np.ndarray:
    """Wilder smoothing (alpha 1/n) seeded with the mean of the first n values from ``start``."""
    from scipy.signal import lfilter

    alpha = 1.0 / n
    out = np.full_like(x, np.nan)
    seed = x[start : start + n].sum(axis=0) / n
    out[start + n - 1] = seed
    zi = ((1.0 - alpha) * seed)[None, :]
    out[start + n :] = lfilter([alpha], [1.0, alpha - 1.0], x[start + n :], axis=0, zi=zi)[0]
    return out


def np_rsi(close: np.ndarray, n: int) -> np.ndarray:
    change = np.empty_like(close)
    change[0] = np.nan
    np.subtract(close[1:], close[:-1], out=change[1:])
    gain = np.maximum(change, 0.0)
    loss = np.maximum(-change, 0.0)
    g, lo = np_wilder(gain, n, 1), np_wilder(loss, n, 1)
    total = g + lo
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0.0, 0.0, 100.0 * g / total)


def np_atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    prev = np.empty_like(close)
    prev[0] = np.nan
    prev[1:] = close[:-1]
    tr = np.maximum(np.maximum(high - low, np.abs(high - prev)), np.abs(low - prev))
    return np_wilder(tr, n, 1)


def np_rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    out = np.full_like(x, np.nan)
    out[n - 1 :] = sliding_window_view(x, n, axis=0).max(axis=-1)
    return out


def np_latch(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    """1 from an ``enter`` bar until a ``leave`` bar (enter wins), per column."""
    rows = np.arange(len(enter))[:, None]
    marked = enter | leave
    last = np.where(marked, rows, -1)
    np.maximum.accumulate(last, axis=0, out=last)
    held = np.take_along_axis(enter, np.maximum(last, 0), axis=0)
    return np.where(last >= 0, held, False).astype(np.float64)


def np_signal(name: str, m: dict[str, np.ndarray]) -> np.ndarray:
    """Raw target weights (bars, symbols) of strategy ``name``."""
    close = m["close"]
    if name == "sma_cross":
        return (np_sma(close, 10) > np_sma(close, 50)).astype(np.float64)
    if name == "rsi_reversion":
        r = np_rsi(close, 14)
        return np_latch(r < 30, r > 50)
    if name == "breakout":
        high = np_rolling_max(m["high"], 20)
        prev = np.full_like(high, np.nan)
        prev[1:] = high[:-1]
        atr = np_atr(m["high"], m["low"], close, 14)
        return np_latch(close > prev, close < high - 3.0 * atr)
    raise KeyError(name)


def np_portfolio(raw: np.ndarray, close: np.ndarray, max_gross: float = 1.0):
    """Gross cap, returns, turnover and gross exposure per bar."""
    gross_raw = np.abs(raw).sum(axis=1)
    scale = np.where(gross_raw > max_gross, max_gross / np.where(gross_raw > 0, gross_raw, 1), 1)
    w = raw * scale[:, None]
    r = np.zeros(len(close))
    r[1:] = (w[:-1] * (close[1:] / close[:-1] - 1.0)).sum(axis=1)
    turnover = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    return r, turnover, np.abs(w).sum(axis=1)


def np_metrics(r: np.ndarray, turnover: np.ndarray, gross: np.ndarray) -> dict[str, float]:
    """qmtl's metric definitions, written directly over the whole series."""
    n = len(r)
    equity = np.cumprod(1.0 + r)
    mu, sd = r.mean(), r.std(ddof=1)
    down = np.minimum(r, 0.0)
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    mdd = float((1.0 - equity / peak).max())
    cagr = equity[-1] ** (PPY / n) - 1.0
    y = np.cumsum(np.log1p(r))
    t = np.arange(1.0, n + 1.0)
    dt, dy = t - t.mean(), y - y.mean()
    losses = -r[r < 0].sum()
    return {
        "total_return": equity[-1] - 1.0,
        "cagr": cagr,
        "volatility": sd * np.sqrt(PPY),
        "sharpe": mu / sd * np.sqrt(PPY),
        "sortino": mu * PPY / (np.sqrt((down * down).mean()) * np.sqrt(PPY)),
        "max_drawdown": mdd,
        "calmar": cagr / mdd,
        "win_rate": (r > 0).sum() / (r != 0).sum(),
        "profit_factor": r[r > 0].sum() / losses,
        "linearity": (dt @ dy) ** 2 / ((dt @ dt) * (dy @ dy)),
        "turnover": turnover.mean() * PPY,
        "exposure": gross.mean(),
        "n_bars": float(n),
    }


def run_numpy(name: str, m: dict[str, np.ndarray]):
    r, turnover, gross = np_portfolio(np_signal(name, m), m["close"])
    return r, np_metrics(r, turnover, gross)


# -- vectorbt -------------------------------------------------------------------------------


def frames(data: Data) -> dict[str, Any]:
    """Column -> DataFrame (time x symbols): the peers' native input, built before timing."""
    import pandas as pd

    syms = sorted(data)
    # tz-naive UTC: vectorbt turns a tz-aware index into Python objects on every wrap
    index = pd.to_datetime(data[syms[0]]["ts"], unit="ns")
    return {
        c: pd.DataFrame({s: data[s][c] for s in syms}, index=index)
        for c in ("open", "high", "low", "close", "volume")
    }


def _latch_pd(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    import pandas as pd

    state = np.where(enter, 1.0, np.where(leave, 0.0, np.nan))
    return pd.DataFrame(state).ffill().fillna(0.0).to_numpy()


def run_vectorbt(name: str, f: dict[str, Any]):
    import pandas as pd
    import vectorbt as vbt

    close = f["close"]
    c = close.to_numpy()
    if name == "sma_cross":
        fast = vbt.MA.run(close, 10).ma.to_numpy()
        slow = vbt.MA.run(close, 50).ma.to_numpy()
        raw = (fast > slow).astype(np.float64)
    elif name == "rsi_reversion":
        r = vbt.talib("RSI").run(close, timeperiod=14).real.to_numpy()
        raw = _latch_pd(r < 30, r > 50)
    elif name == "breakout":
        high = f["high"].vbt.rolling_max(20).to_numpy()
        prev = np.full_like(high, np.nan)
        prev[1:] = high[:-1]
        atr = vbt.talib("ATR").run(f["high"], f["low"], close, timeperiod=14).real.to_numpy()
        raw = _latch_pd(c > prev, c < high - 3.0 * atr)
    else:
        raise KeyError(name)
    gross = raw.sum(axis=1)
    w = raw / np.where(gross > 1.0, gross, 1.0)[:, None]
    pf = vbt.Portfolio.from_orders(
        close,
        size=pd.DataFrame(w, index=close.index, columns=close.columns),
        size_type="targetpercent",
        group_by=True,
        cash_sharing=True,
        call_seq="auto",
        freq="1min",
    )
    rets = pf.returns()
    acc = rets.vbt.returns(freq="1min")
    metrics = {
        "total_return": acc.total(),
        "cagr": acc.annualized(),
        "volatility": acc.annualized_volatility(),
        "sharpe": acc.sharpe_ratio(),
        "sortino": acc.sortino_ratio(),
        "max_drawdown": acc.max_drawdown(),
        "calmar": acc.calmar_ratio(),
    }
    return rets.to_numpy(), metrics


# -- backtesting.py (one symbol) ------------------------------------------------------------


def _backtesting_class(name: str):
    import pandas as pd
    import talib
    from backtesting import Strategy as BtStrategy

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


def backtesting_frame(data: Data) -> Any:
    f = frames(data)
    (sym,) = list(data)
    return f["close"][[sym]].rename(columns={sym: "Close"}).assign(
        Open=f["open"][sym], High=f["high"][sym], Low=f["low"][sym], Volume=f["volume"][sym]
    )


def run_backtesting(name: str, df: Any):
    from backtesting import Backtest

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


# -- backtrader -----------------------------------------------------------------------------


def run_backtrader(name: str, f: dict[str, Any]):
    import backtrader as bt

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


# -- Bytewax, naive per-bar port ------------------------------------------------------------


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


def run_bytewax_naive(name: str, items: list, n_symbols: int):
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSink, TestingSource, run_main

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


# -- qmtl -----------------------------------------------------------------------------------


def run_qmtl(name: str, data: Data, batch_size: int = 10_000, workers: int = 1):
    res = backtest(STRATEGIES[name], data=data, symbols=sorted(data), batch_size=batch_size,
                   workers=workers)
    return res.returns, res.metrics


# -- harness --------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    n_symbols: int
    n_bars: int
    slow_bars: int = 0  # bars per symbol for the per-bar Python peers (a prefix)
    slow_symbols: int = 1  # symbols for backtrader (the first ones)
    one_bar_bars: int = 0  # bars per symbol for qmtl with one bar per batch (a prefix)


@dataclass
class Plan:
    cases: list[Case]
    repeat: int
    scaling: Case
    memory_bars: list[int]
    memory_symbols: int


FULL = Plan(
    cases=[Case("1 symbol x 1M", 1, 1_000_000, slow_bars=20_000, one_bar_bars=20_000),
           Case("100 symbols x 100k", 100, 100_000, slow_bars=2_000, slow_symbols=10,
                one_bar_bars=200)],
    repeat=5,
    scaling=Case("100 symbols x 100k", 100, 100_000),
    memory_bars=[10_000, 100_000, 1_000_000],
    memory_symbols=100,
)
QUICK = Plan(
    cases=[Case("1 symbol x 5k", 1, 5_000, slow_bars=600, one_bar_bars=600),
           Case("4 symbols x 2k", 4, 2_000, slow_bars=600, slow_symbols=2, one_bar_bars=300)],
    repeat=1,
    scaling=Case("4 symbols x 2k", 4, 2_000),
    memory_bars=[1_000, 4_000],
    memory_symbols=3,
)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def check_returns(system: str, got: np.ndarray, want: np.ndarray, exact: bool = False) -> str:
    """Per-bar returns equal to qmtl's (1e-9, or bit for bit) and equity to 1e-6 relative."""
    if got.shape != want.shape:
        raise CheckFailed(f"{system}: {got.shape[0]} returns, qmtl has {want.shape[0]}")
    if exact:
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            raise CheckFailed(f"{system}: return at bar {bad} is {got[bad]!r}, qmtl {want[bad]!r}")
        return "returns bit-identical"
    diff = np.abs(got - want)
    if not diff.max() <= ATOL_RETURNS:
        bad = int(np.argmax(diff))
        raise CheckFailed(
            f"{system}: return at bar {bad} is {got[bad]:.12g}, qmtl {want[bad]:.12g} "
            f"(|diff| {diff[bad]:.3g} > {ATOL_RETURNS})"
        )
    eq_got, eq_want = np.prod(1.0 + got), np.prod(1.0 + want)
    if not abs(eq_got / eq_want - 1.0) <= RTOL_EQUITY:
        raise CheckFailed(f"{system}: final equity {eq_got!r}, qmtl {eq_want!r}")
    return f"returns 1e-9 (max |diff| {diff.max():.1e})"


def check_metrics(system: str, got: dict[str, float], want: dict[str, float]) -> None:
    for k, v in got.items():
        w = want[k]
        if not np.isclose(float(v), w, rtol=1e-8, atol=1e-12, equal_nan=True):
            raise CheckFailed(f"{system}: metric {k} = {float(v)!r}, qmtl {w!r}")


def race(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, Any]]:
    """Each function once per round, in turn: its best time and last result. Interleaving
    makes load from other processes on a shared machine hit every system alike."""
    best, last = dict.fromkeys(fns, float("inf")), {}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            last[key] = fn()
            best[key] = min(best[key], time.perf_counter() - t0)
    return {key: (best[key], last[key]) for key in fns}


def peer_run(
    label: str, system: str, strategy: str, timing: tuple[float, Any],
    want: np.ndarray, bars: int, *, exact: bool = False, metrics: dict | None = None,
    note: str = "",
) -> dict[str, Any]:
    seconds, (r, m) = timing
    check = check_returns(system, np.asarray(r, dtype=np.float64), want, exact)
    if metrics is not None:
        check_metrics(system, m, metrics)
        check += ", metrics 1e-8"
    return {"case": label, "strategy": strategy, "system": system, "bars": bars,
            "seconds": seconds, "bars_per_s": bars / seconds, "check": check, "note": note}


def run_case(case: Case, plan: Plan, warm: Data) -> list[dict[str, Any]]:
    data = make_data(case.n_symbols, case.n_bars)
    m = matrices(data)
    f = frames(data)
    total = case.n_symbols * case.n_bars
    slow_syms = min(case.slow_symbols, case.n_symbols)
    slow_bw_bars = min(case.slow_bars, case.n_bars)
    slow = head(data, slow_syms, slow_bw_bars)
    slow_f = frames(slow)
    slow_items = bytewax_items(head(data, case.n_symbols, slow_bw_bars))
    bt_frame = backtesting_frame(slow) if case.n_symbols == 1 else None
    one = head(data, case.n_symbols, min(case.one_bar_bars, case.n_bars))
    rows = []
    for name in STRATEGIES:
        # warm every system (imports, numba, caches) before timing
        wm = matrices(warm)
        run_qmtl(name, warm)
        run_numpy(name, wm)
        wf = frames(warm)
        run_vectorbt(name, wf)
        run_backtrader(name, frames(head(warm, 1, 400)))
        run_backtesting(name, backtesting_frame(head(warm, 1, 400)))
        run_bytewax_naive(name, bytewax_items(warm), len(warm))
        fast = race({"qmtl": lambda n=name: run_qmtl(n, data),
                     "numpy": lambda n=name: run_numpy(n, m),
                     "vectorbt": lambda n=name: run_vectorbt(n, f)}, plan.repeat)
        seconds, (want, want_m) = fast["qmtl"]
        base = {"case": case.label, "strategy": name, "system": "qmtl", "bars": total,
                "seconds": seconds, "bars_per_s": total / seconds, "check": "reference",
                "note": "batch 10,000: returns, 13 metrics, per-symbol rows, fingerprint"}
        got = [base]
        # the slow peers run on a prefix: no look-ahead makes qmtl's prefix their reference
        slow_want = want[: len(slow[sorted(slow)[0]]["ts"])]
        if slow_syms != case.n_symbols:
            slow_want = run_qmtl(name, slow)[0]
        got.append(peer_run(case.label, "numpy (floor)", name, fast["numpy"], want, total,
                            metrics=want_m, note="hand-written, whole arrays"))
        got.append(peer_run(case.label, "vectorbt", name, fast["vectorbt"], want, total,
                            note="from_orders target percent; 7 metrics"))
        one_bars = case.n_symbols * len(one[sorted(one)[0]]["ts"])
        got.append(peer_run(case.label, "qmtl, 1 bar per batch", name,
                            timed(lambda n=name: run_qmtl(n, one, batch_size=1), 1),
                            want[: one_bars // case.n_symbols], one_bars, exact=True,
                            note=f"subset {case.n_symbols} x {one_bars // case.n_symbols:,}"))
        if bt_frame is not None:
            got.append(peer_run(case.label, "backtesting.py", name,
                                timed(lambda n=name: run_backtesting(n, bt_frame), 1),
                                slow_want, len(bt_frame), note=f"subset {len(bt_frame):,} "
                                "bars; whole shares of 1e10 cash"))
        bt_bars = slow_syms * len(slow[sorted(slow)[0]]["ts"])
        got.append(peer_run(case.label, "backtrader", name,
                            timed(lambda n=name: run_backtrader(n, slow_f), 1), slow_want,
                            bt_bars, note=f"subset {slow_syms} x {bt_bars // slow_syms:,}; "
                            "fractional, cheat-on-close"))
        got.append(peer_run(case.label, "bytewax per-bar", name,
                            timed(lambda n=name: run_bytewax_naive(n, slow_items,
                                                                   case.n_symbols), 1),
                            want[:slow_bw_bars], len(slow_items),
                            note=f"subset {case.n_symbols} x {slow_bw_bars:,}; stateful_map"))
        for row in got:
            row["qmtl_speedup"] = base["bars_per_s"] / row["bars_per_s"]
            print(f"  {case.label:<20} {name:<14} {row['system']:<22} "
                  f"{row['bars_per_s']:>14,.0f} bars/s  x{row['qmtl_speedup']:<8.2f} "
                  f"{row['check']}", flush=True)
        rows.extend(got)
    return rows


# -- scaling: workers and processes ---------------------------------------------------------


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cluster_child(folder: Path, proc_id: int, addresses: list[str]) -> None:
    """One process of a Bytewax cluster replaying the saved data (see :func:`run_scaling`)."""
    from bytewax.testing import cluster_main

    from connectors.data.memory import aligned_batches
    from dataflows.compiler import build_flow
    from dataflows.control import RunControl
    from qmtl.runner import to_spec

    with np.load(folder / "data.npz") as z:
        data: Data = {}
        for key in z.files:
            sym, col = key.split("/")
            data.setdefault(sym, {})[col] = z[key]
    syms = sorted(data)
    spec = to_spec(SmaCross(), syms, None)
    outputs: list[Any] = []
    control = RunControl()
    flow = build_flow([spec], lambda: aligned_batches(data, 10_000, syms), outputs.append, control)
    t0 = time.perf_counter()
    cluster_main(flow, addresses, proc_id, worker_count_per_proc=1)
    seconds = time.perf_counter() - t0
    if control.error is not None:
        raise control.error
    batches = [o.batch for o in outputs if o.batch is not None]
    returns = np.concatenate([b.returns for b in batches]) if batches else None
    metrics = [o.metrics for o in outputs if o.metrics is not None]
    with open(folder / f"out{proc_id}.pkl", "wb") as fh:
        pickle.dump({"seconds": seconds, "returns": returns,
                     "metrics": metrics[-1] if metrics else None}, fh)


def _run_cluster(folder: Path, n_procs: int) -> tuple[float, np.ndarray, dict]:
    addresses = [f"127.0.0.1:{p}" for p in _free_ports(n_procs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, __file__, "--cluster-child", str(folder), str(i),
                          ";".join(addresses)], env=env)
        for i in range(n_procs)
    ]
    for p in procs:
        if p.wait(timeout=1800) != 0:
            raise RuntimeError(f"cluster process exited with {p.returncode}")
    outs = []
    for i in range(n_procs):
        with open(folder / f"out{i}.pkl", "rb") as fh:
            outs.append(pickle.load(fh))
    (owner,) = [o for o in outs if o["returns"] is not None]
    # each process times its own run; the last to join waited least for the others
    return min(o["seconds"] for o in outs), owner["returns"], owner["metrics"]


def run_scaling(case: Case, repeat: int) -> list[dict[str, Any]]:
    data = make_data(case.n_symbols, case.n_bars)
    total = case.n_symbols * case.n_bars
    rows = []
    got = race({1: lambda: run_qmtl("sma_cross", data, workers=1),
                2: lambda: run_qmtl("sma_cross", data, workers=2)}, repeat)
    (t1, (r1, m1)), (t2, (r2, m2)) = got[1], got[2]
    check_returns("workers 2", r2, r1, exact=True)
    check_metrics("workers 2", m2, m1)
    rows.append({"case": case.label, "setup": "1 worker", "seconds": t1, "bars_per_s": total / t1,
                 "speedup": 1.0, "check": "reference"})
    rows.append({"case": case.label, "setup": "2 workers (1 process)", "seconds": t2,
                 "bars_per_s": total / t2, "speedup": t1 / t2, "check": "returns bit-identical"})
    with tempfile.TemporaryDirectory(prefix="qmtl-scaling-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "data.npz",
                 **{f"{s}/{c}": v for s, bars in data.items() for c, v in bars.items()})
        runs: dict[int, list] = {1: [], 2: []}
        for _ in range(repeat):  # interleaved, like race()
            for n in (1, 2):
                runs[n].append(_run_cluster(folder, n))
        best = {n: min(runs[n], key=lambda x: x[0]) for n in (1, 2)}
        for n in (1, 2):
            check_returns(f"{n} processes", best[n][1], r1, exact=True)
            check_metrics(f"{n} processes", best[n][2], m1)
    for n in (1, 2):
        rows.append({"case": case.label, "setup": f"{n} process{'es' if n > 1 else ''} "
                     "(cluster_main, 1 worker each)", "seconds": best[n][0],
                     "bars_per_s": total / best[n][0], "speedup": best[1][0] / best[n][0],
                     "check": "reference" if n == 1 else "returns bit-identical"})
    for row in rows:
        print(f"  {row['setup']:<42} {row['bars_per_s']:>14,.0f} bars/s  "
              f"x{row['speedup']:<6.2f} {row['check']}", flush=True)
    return rows


# -- report ---------------------------------------------------------------------------------


def targets(rows: list[dict], scaling: list[dict], memory: list[dict],
            plan: Plan) -> list[dict]:
    """Issue 7's targets, each with the measured value."""

    def speedup(case: Case, system: str) -> float | None:
        for r in rows:
            if r["case"] == case.label and r["strategy"] == "sma_cross" and r["system"] == system:
                return r["qmtl_speedup"]
        return None

    one, many = plan.cases
    out = []
    for case, system, goal in ((one, "vectorbt", 3.0), (one, "numpy (floor)", 0.5),
                               (one, "backtesting.py", 100.0), (one, "backtrader", 1000.0),
                               (many, "vectorbt", 3.0)):
        value = speedup(case, system)
        out.append({"target": f"SMA cross {case.label}: qmtl / {system} >= {goal:g}",
                    "value": value, "met": value is not None and value >= goal})
    if scaling:
        w2 = next(r["speedup"] for r in scaling if r["setup"].startswith("2 workers"))
        p2 = next(r["speedup"] for r in scaling if r["setup"].startswith("2 processes"))
        out.append({"target": "2 workers / 1 worker >= 1.6", "value": w2, "met": w2 >= 1.6})
        out.append({"target": "2 processes / 1 process >= 1.6", "value": p2, "met": p2 >= 1.6})
    if memory:
        rss = [r["peak_rss_mb"] for r in memory if r["mode"] == "stream"]
        growth = max(rss) / min(rss)
        out.append({"target": "streaming replay peak RSS flat in history (<= 1.3x)",
                    "value": growth, "met": growth <= 1.3})
    return out


def print_table(rows: list[dict]) -> None:
    head_ = (f"{'case':<20} {'strategy':<14} {'system':<22} {'bars':>11} {'bars/s':>13} "
             f"{'qmtl x':>8}  check / note")
    print("\n" + head_)
    print("-" * len(head_))
    for r in rows:
        print(f"{r['case']:<20} {r['strategy']:<14} {r['system']:<22} {r['bars']:>11,} "
              f"{r['bars_per_s']:>13,.0f} {r['qmtl_speedup']:>8.2f}  {r['check']}; {r['note']}")


def markdown(doc: dict[str, Any]) -> str:
    """The README's tables from a ``peers.json``."""
    out = [f"`{doc['command']}` ({doc['cpus']} cores, Python {doc['python']}); qmtl x = qmtl's "
           "bars/s over the system's, measured in the same run.", ""]
    for case in dict.fromkeys(r["case"] for r in doc["rows"]):
        rows = [r for r in doc["rows"] if r["case"] == case]
        systems = list(dict.fromkeys(r["system"] for r in rows))
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
        out.append(f"| {case} | " + " | ".join(f"{s} bars/s (qmtl x)" for s in strategies) + " |")
        out.append("|---" * (len(strategies) + 1) + "|")
        for system in systems:
            cells = []
            for strategy in strategies:
                r = next(r for r in rows if r["system"] == system and r["strategy"] == strategy)
                rate = r["bars_per_s"]
                text = f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:.1f} k"
                cells.append(text if system == "qmtl" else f"{text} ({r['qmtl_speedup']:.2f})")
            note = next(r["note"] for r in rows if r["system"] == system)
            sub = f" ({note.split(';')[0]})" if note.startswith("subset") else ""
            out.append(f"| {system}{sub} | " + " | ".join(cells) + " |")
        out.append("")
    if doc["scaling"]:
        out += ["| SMA cross, " + doc["scaling"][0]["case"] + " | bars/s | speed-up |",
                "|---|---|---|"]
        out += [f"| {r['setup']} | {r['bars_per_s'] / 1e6:.2f} M | {r['speedup']:.2f} |"
                for r in doc["scaling"]]
        out.append("")
    if doc["memory"]:
        symbols = doc["memory"][0]["symbols"]
        out += [f"| replay of {symbols} symbols from the catalog | peak RSS | bars/s |",
                "|---|---|---|"]
        for r in doc["memory"]:
            rate = r["symbols"] * r["bars_per_symbol"] / r["seconds"]
            out.append(f"| {r['bars_per_symbol']:,} bars per symbol, {r['mode']} | "
                       f"{r['peak_rss_mb']:,.0f} MB | {rate / 1e6:.2f} M |")
        out.append("")
    if doc["targets"]:
        out += ["| target (issue 7) | measured | |", "|---|---|---|"]
        out += [f"| {t['target']} | {'n/a' if t['value'] is None else format(t['value'], '.2f')} | "
                f"{'met' if t['met'] else 'missed'} |" for t in doc["targets"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only", choices=["1", "2"], help="run only the 1st or 2nd size")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    parser.add_argument("--markdown", type=Path, metavar="JSON",
                        help="print the README tables of an earlier run's JSON and exit")
    parser.add_argument("--cluster-child", nargs=3, metavar=("DIR", "ID", "ADDRS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return 0
    if args.cluster_child:
        folder, proc_id, addrs = args.cluster_child
        cluster_child(Path(folder), int(proc_id), addrs.split(";"))
        return 0
    plan = QUICK if args.quick else FULL
    cases = plan.cases if not args.only else [plan.cases[int(args.only) - 1]]
    warm = make_data(2, 400, seed=99)
    rows: list[dict] = []
    try:
        for case in cases:
            print(f"{case.label}:", flush=True)
            rows.extend(run_case(case, plan, warm))
        scaling: list[dict] = []
        if not args.skip_scaling:
            print(f"scaling, SMA cross, {plan.scaling.label}:", flush=True)
            scaling = run_scaling(plan.scaling, plan.repeat)
        memory: list[dict] = []
        if not args.skip_memory:
            from bench.memory import run_memory

            print(f"memory, SMA cross, {plan.memory_symbols} symbols, streaming replay from "
                  "the Parquet catalog:", flush=True)
            memory = run_memory(plan.memory_symbols, plan.memory_bars)
    except CheckFailed as exc:
        print(f"\nCHECK FAILED: {exc}", file=sys.stderr)
        return 1
    print_table(rows)
    goals = targets(rows, scaling, memory, plan) if len(cases) == 2 else []
    if goals:
        print(f"\ntargets (issue 7){' - quick sizes, not meaningful' if args.quick else ''}:")
        for g in goals:
            value = "n/a" if g["value"] is None else f"{g['value']:.2f}"
            print(f"  {'met   ' if g['met'] else 'MISSED'} {g['target']}: {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python bench/peers.py" + (" --quick" if args.quick else ""),
        "machine": platform.platform(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "quick": args.quick,
        "rows": rows, "scaling": scaling, "memory": memory, "targets": goals,
    }, indent=2, default=float) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
