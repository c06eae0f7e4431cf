"""Technical indicators built from the expression API (``from qmtl import ind``).

Each indicator is a composition of primitive nodes, so it shares sub-expressions with the
rest of a strategy and runs batch-invariantly like any operator. Values follow TA-Lib's
definitions (tested against TA-Lib after its unstable period).

>>> from qmtl.core.expr import col
>>> rsi(col("close"), 14).lookback
14
>>> upper, middle, lower = bollinger(col("close"), 20, 2.0)
>>> middle.op
'rolling_mean'
"""

from __future__ import annotations

from qmtl.core.expr import Bollinger, Expr, Macd, as_expr, where


def rsi(x: Expr, n: int = 14) -> Expr:
    """Relative strength index with Wilder smoothing, 0..100 (TA-Lib RSI).

    >>> from qmtl.core.expr import col
    >>> rsi(col("close")).op
    'where'
    """
    change = x.diff(1)
    gain = change.maximum(0.0)
    loss = (-change).maximum(0.0)
    avg_gain, avg_loss = gain.wilder(n), loss.wilder(n)
    total = avg_gain + avg_loss
    return where(total == 0.0, 0.0 * avg_gain, 100.0 * avg_gain / total)


def true_range(high: Expr, low: Expr, close: Expr) -> Expr:
    """True range: the largest of high-low, |high-prev close|, |low-prev close| (TA-Lib TRANGE).

    NaN on the first bar (no previous close), as TA-Lib.

    >>> from qmtl.core.expr import col
    >>> true_range(col("high"), col("low"), col("close")).lookback
    1
    """
    prev = close.shift(1)
    return (high - low).maximum((high - prev).abs()).maximum((low - prev).abs())


def atr(high: Expr, low: Expr, close: Expr, n: int = 14) -> Expr:
    """Average true range with Wilder smoothing (TA-Lib ATR).

    >>> from qmtl.core.expr import col
    >>> atr(col("high"), col("low"), col("close"), 14).lookback
    14
    """
    return true_range(high, low, close).wilder(n)


def bollinger(x: Expr, n: int = 20, k: float = 2.0) -> Bollinger:
    """Bollinger bands: SMA(n) +- k population standard deviations (TA-Lib BBANDS).

    >>> from qmtl.core.expr import col
    >>> bollinger(col("close")).upper.op
    'add'
    """
    middle = x.sma(n)
    width = as_expr(float(k)) * x.std(n)
    return Bollinger(middle + width, middle, middle - width)


def macd(x: Expr, fast: int = 12, slow: int = 26, signal: int = 9) -> Macd:
    """MACD line (EMA fast - EMA slow), its signal EMA and the histogram (TA-Lib MACD).

    TA-Lib seeds the fast EMA later than a stand-alone EMA would; the two agree once that
    unstable period (a few times ``slow`` bars) has passed.

    >>> from qmtl.core.expr import col
    >>> macd(col("close")).signal.op
    'ema'
    """
    if fast >= slow:
        raise ValueError(f"macd: fast ({fast}) must be shorter than slow ({slow})")
    line = x.ema(fast) - x.ema(slow)
    sig = line.ema(signal)
    return Macd(line, sig, line - sig)
