"""The floor: the three strategies, qmtl's portfolio and its metrics in hand-written numpy
over whole arrays (scipy's ``lfilter`` for Wilder smoothing).

>>> from bench.common import make_data
>>> r, m = run_numpy("sma_cross", matrices(make_data(2, 80)))
>>> len(r), m["n_bars"]
(80, 80.0)
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from bench.common import PPY, Data


def matrices(data: Data) -> dict[str, np.ndarray]:
    """Column -> (bars, symbols) matrix, symbols sorted (the numpy floor's input)."""
    syms = sorted(data)
    return {
        c: np.column_stack([data[s][c] for s in syms])
        for c in ("open", "high", "low", "close", "volume")
    }


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
    alpha = 1.0 / n
    out = np.full_like(x, np.nan)
    seed = x[start : start + n].sum(axis=0) / n
    out[start + n - 1] = seed
    zi = ((1.0 - alpha) * seed)[None, :]
    out[start + n :] = lfilter([alpha], [1.0, alpha - 1.0], x[start + n :], axis=0, zi=zi)[0]
    return out


def np_rsi(close: np.ndarray, n: int) -> np.ndarray:
    """RSI with Wilder smoothing per column (TA-Lib RSI)."""
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
    """Average true range with Wilder smoothing per column (TA-Lib ATR)."""
    prev = np.empty_like(close)
    prev[0] = np.nan
    prev[1:] = close[:-1]
    tr = np.maximum(np.maximum(high - low, np.abs(high - prev)), np.abs(low - prev))
    return np_wilder(tr, n, 1)


def np_rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Maximum of the last ``n`` rows per column (NaN before ``n``)."""
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


def np_portfolio(
    raw: np.ndarray, close: np.ndarray, max_gross: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def run_numpy(name: str, m: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
    """Strategy ``name`` over column matrices ``m``: per-bar returns and the 13 metrics."""
    r, turnover, gross = np_portfolio(np_signal(name, m), m["close"])
    return r, np_metrics(r, turnover, gross)
