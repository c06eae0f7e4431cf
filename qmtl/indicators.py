"""Technical indicators as functions (``from qmtl import ind``): ``ind.rsi(x, 14)`` is
``x.rsi(14)``, the same node.

The compositions themselves are methods of :class:`~qmtl.core.expr.Expr` (``rsi``,
``bollinger``, ``macd``), so the expression layer needs nothing from here; this namespace
adds the indicators of several columns (true range, ATR). Each is a composition of primitive
nodes, so it shares sub-expressions with the rest of a strategy and runs batch-invariantly
like any operator. Values follow TA-Lib's definitions (tested against TA-Lib after its
unstable period).

>>> from qmtl.core.expr import col
>>> rsi(col("close"), 14).id == col("close").rsi(14).id
True
>>> upper, middle, lower = bollinger(col("close"), 20, 2.0)
>>> middle.op
'rolling_mean'
"""

from __future__ import annotations

from qmtl.core.expr import Bollinger, Expr, Macd, as_expr

__all__ = ["Bollinger", "Macd", "atr", "bollinger", "macd", "rsi", "true_range"]


def rsi(x: Expr, n: int = 14) -> Expr:
    """Relative strength index with Wilder smoothing, 0..100 (TA-Lib RSI): ``x.rsi(n)``.

    >>> from qmtl.core.expr import col
    >>> rsi(col("close")).op
    'where'
    """
    return as_expr(x).rsi(n)


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
    """Bollinger bands: SMA(n) +- k population standard deviations (TA-Lib BBANDS):
    ``x.bollinger(n, k)``.

    >>> from qmtl.core.expr import col
    >>> bollinger(col("close")).upper.op
    'add'
    """
    return as_expr(x).bollinger(n, k)


def macd(x: Expr, fast: int = 12, slow: int = 26, signal: int = 9) -> Macd:
    """MACD line (EMA fast - EMA slow), its signal EMA and the histogram (TA-Lib MACD):
    ``x.macd(fast, slow, signal)``.

    >>> from qmtl.core.expr import col
    >>> macd(col("close")).signal.op
    'ema'
    """
    return as_expr(x).macd(fast, slow, signal)
