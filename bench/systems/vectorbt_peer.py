"""vectorbt: its indicators, ``Portfolio.from_orders`` at target percent, its returns and
metrics (numba: warm it before timing). Input: :func:`bench.common.frames`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import vectorbt as vbt


def _latch_pd(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    state = np.where(enter, 1.0, np.where(leave, 0.0, np.nan))
    return pd.DataFrame(state).ffill().fillna(0.0).to_numpy()


def run_vectorbt(name: str, f: dict[str, Any]) -> tuple[np.ndarray, dict[str, float]]:
    """Strategy ``name`` over frames ``f``: per-bar returns and vectorbt's 7 metrics."""
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
