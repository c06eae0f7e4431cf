"""The expression API: strategies are graphs of :class:`Expr` nodes with content ids.

An expression is built from bar columns with arithmetic, comparisons and indicator methods,
in the style of polars' expressions. Nothing is computed when it is built: each node records
its operator, parameters and inputs, and its ``id`` is a stable hash of those, so identical
sub-expressions (in one strategy or across strategies) are the same node and are computed once.

Node identity (content ids, warm-up, the graph walk) is in :mod:`qmtl.core.expr_nodes`, the
Python operators in :mod:`qmtl.core.expr_operators`; indicators are methods here (``rsi``,
``bollinger``, ``macd``) and functions in the user namespace :mod:`qmtl.indicators`.

>>> from qmtl.core.expr import col
>>> close = col("close")
>>> fast, slow = close.sma(10), close.sma(50)
>>> sig = fast > slow
>>> sig.op, [i.op for i in sig.inputs]
('gt', ['rolling_mean', 'rolling_mean'])
>>> close.sma(10).id == fast.id      # same operator, params and inputs: same node
True
>>> sig.lookback                     # bars before the first defined value
49
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from qmtl.core.expr_nodes import canonical, content_id, own_lookback, positive_window
from qmtl.core.expr_operators import ExprOperators, Number

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Bar columns an expression may read."""


def lit(value: Number) -> Expr:
    """A constant expression.

    >>> lit(1.5).params["value"]
    1.5
    """
    return Expr("const", value=float(value))


def col(name: str, symbol: str | None = None, interval: str | None = None) -> Expr:
    """A bar column: one of open, high, low, close, volume; of another ``symbol``'s bars
    (``bars["SPY"]``) or of a coarser ``interval`` (``bars.at("1d")``) when given.

    >>> col("close").params
    {'name': 'close'}
    >>> col("close", symbol="SPY", interval="1d").params
    {'interval': '1d', 'name': 'close', 'symbol': 'SPY'}
    >>> col("vwap")
    Traceback (most recent call last):
    ...
    ValueError: unknown column 'vwap': use one of open, high, low, close, volume
    """
    if name not in COLUMNS:
        raise ValueError(f"unknown column {name!r}: use one of {', '.join(COLUMNS)}")
    extra = {k: v for k, v in (("symbol", symbol), ("interval", interval)) if v is not None}
    return Expr("col", name=name, **extra)


def as_expr(value: Expr | Number) -> Expr:
    """``value`` as an expression: expressions pass through, numbers become constants.

    >>> as_expr(2).op
    'const'
    >>> as_expr("x")
    Traceback (most recent call last):
    ...
    TypeError: expected an expression or a number, got str
    """
    if isinstance(value, Expr):
        return value
    if isinstance(value, (bool, int, float, np.integer, np.floating)):
        return lit(float(value))
    raise TypeError(f"expected an expression or a number, got {type(value).__name__}")


class Expr(ExprOperators):
    """A node of a strategy graph: operator, parameters, inputs and a content id.

    Build expressions with operators and methods rather than this constructor.

    >>> e = (col("close") - col("open")).abs()
    >>> e.op, len(e.id)
    ('abs', 20)
    """

    __slots__ = ("id", "inputs", "lookback", "op", "params")

    def __init__(self, op: str, *inputs: Expr, **params: Any) -> None:
        self.op = op
        self.inputs: tuple[Expr, ...] = tuple(inputs)
        self.params: dict[str, Any] = dict(sorted(params.items()))
        self.id = content_id(op, self.params, [i.id for i in self.inputs])
        base = max((i.lookback for i in self.inputs), default=0)
        self.lookback: int = base + own_lookback(op, self.params)

    # -- identity -------------------------------------------------------------------------
    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        args = [repr(i) for i in self.inputs]
        args += [f"{k}={canonical(v)!s}" for k, v in self.params.items() if k != "fn"]
        if self.op == "col":
            return str(self.params["name"])
        if self.op == "const":
            return repr(self.params["value"])
        return f"{self.op}({', '.join(args)})"

    def __bool__(self) -> bool:
        raise TypeError(
            "an expression has no truth value while the strategy is being built: use "
            "`&`, `|`, `~` and `where(cond, a, b)` instead of `and`, `or`, `not` and `if`"
        )

    # -- node builders of the operators (see qmtl.core.expr_operators) ---------------------
    def _bin(self, op: str, other: Expr | Number, reverse: bool = False) -> Expr:
        other_e = as_expr(other)
        return Expr(op, other_e, self) if reverse else Expr(op, self, other_e)

    def _unary(self, op: str) -> Expr:
        return Expr(op, self)

    # -- elementwise functions --------------------------------------------------------------
    def abs(self) -> Expr:
        """Absolute value.

        >>> col("close").abs().op
        'abs'
        """
        return Expr("abs", self)

    def log(self) -> Expr:
        """Natural logarithm.

        >>> col("close").log().op
        'log'
        """
        return Expr("log", self)

    def exp(self) -> Expr:
        """Exponential.

        >>> col("close").exp().op
        'exp'
        """
        return Expr("exp", self)

    def sqrt(self) -> Expr:
        """Square root.

        >>> col("close").sqrt().op
        'sqrt'
        """
        return Expr("sqrt", self)

    def sign(self) -> Expr:
        """-1, 0 or 1 by the sign of the value.

        >>> col("close").diff().sign().op
        'sign'
        """
        return Expr("sign", self)

    def clip(self, lower: float | None = None, upper: float | None = None) -> Expr:
        """Limit values to ``[lower, upper]`` (either bound may be omitted).

        >>> col("close").clip(0, 1).params
        {'hi': 1.0, 'lo': 0.0}
        """
        lo = None if lower is None else float(lower)
        hi = None if upper is None else float(upper)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"clip: lower {lo} > upper {hi}")
        return Expr("clip", self, lo=lo, hi=hi)

    def fillna(self, value: float) -> Expr:
        """Replace NaN (for example during warm-up) with ``value``.

        >>> col("close").sma(3).fillna(0).op
        'fillna'
        """
        return Expr("fillna", self, value=float(value))

    def maximum(self, other: Expr | Number) -> Expr:
        """Elementwise maximum with ``other``.

        >>> col("high").maximum(col("low")).op
        'maximum'
        """
        return self._bin("maximum", other)

    def minimum(self, other: Expr | Number) -> Expr:
        """Elementwise minimum with ``other``.

        >>> col("high").minimum(0).op
        'minimum'
        """
        return self._bin("minimum", other)

    # -- time-series operators --------------------------------------------------------------
    def shift(self, n: int = 1) -> Expr:
        """The value ``n`` bars ago (NaN for the first ``n`` bars).

        >>> col("close").shift(2).lookback
        2
        """
        return Expr("shift", self, n=positive_window("shift", n))

    def diff(self, n: int = 1) -> Expr:
        """``x - x.shift(n)``.

        >>> col("close").diff().op
        'sub'
        """
        return self - self.shift(n)

    def pct_change(self, n: int = 1) -> Expr:
        """``x / x.shift(n) - 1``.

        >>> col("close").pct_change(5).lookback
        5
        """
        return self / self.shift(n) - 1.0

    def sum(self, n: int) -> Expr:
        """Rolling sum over the last ``n`` bars.

        >>> col("volume").sum(20).op
        'rolling_sum'
        """
        return Expr("rolling_sum", self, n=positive_window("sum", n))

    def sma(self, n: int) -> Expr:
        """Simple moving average over ``n`` bars (TA-Lib SMA).

        >>> col("close").sma(10).lookback
        9
        """
        return Expr("rolling_mean", self, n=positive_window("sma", n))

    mean = sma

    def ema(self, n: int) -> Expr:
        """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first ``n``
        values (TA-Lib EMA).

        >>> round(col("close").ema(9).params["alpha"], 3)
        0.2
        """
        n = positive_window("ema", n)
        return Expr("ema", self, n=n, alpha=2.0 / (n + 1))

    def wilder(self, n: int) -> Expr:
        """Wilder's smoothing: an EMA with alpha = 1/n, SMA-seeded (as in RSI and ATR).

        >>> col("close").wilder(14).params["alpha"] == 1 / 14
        True
        """
        n = positive_window("wilder", n)
        return Expr("ema", self, n=n, alpha=1.0 / n)

    def wma(self, n: int) -> Expr:
        """Linearly weighted moving average, newest weight ``n`` (TA-Lib WMA).

        >>> col("close").wma(5).op
        'wma'
        """
        return Expr("wma", self, n=positive_window("wma", n))

    def var(self, n: int, ddof: int = 0) -> Expr:
        """Rolling variance over ``n`` bars; population (``ddof=0``) by default, as TA-Lib.

        >>> col("close").var(20, ddof=1).params
        {'ddof': 1, 'n': 20}
        """
        n = positive_window("var", n)
        if not 0 <= ddof < n:
            raise ValueError(f"var: ddof must be in [0, {n}), got {ddof}")
        return Expr("rolling_var", self, n=n, ddof=int(ddof))

    def std(self, n: int, ddof: int = 0) -> Expr:
        """Rolling standard deviation (population by default, as TA-Lib STDDEV).

        >>> col("close").std(20).op
        'sqrt'
        """
        return self.var(n, ddof).sqrt()

    def min(self, n: int) -> Expr:
        """Rolling minimum over ``n`` bars.

        >>> col("low").min(20).op
        'rolling_min'
        """
        return Expr("rolling_min", self, n=positive_window("min", n))

    def max(self, n: int) -> Expr:
        """Rolling maximum over ``n`` bars.

        >>> col("high").max(20).op
        'rolling_max'
        """
        return Expr("rolling_max", self, n=positive_window("max", n))

    def zscore(self, n: int) -> Expr:
        """``(x - sma(n)) / std(n)``.

        >>> col("close").zscore(20).op
        'div'
        """
        return (self - self.sma(n)) / self.std(n)

    def rolling(self, n: int) -> Rolling:
        """A rolling window of ``n`` bars, for :meth:`Rolling.apply` with a Python function.

        >>> col("close").rolling(5).apply(lambda w: w[-1] - w[0]).op
        'rolling_apply'
        """
        return Rolling(self, positive_window("rolling", n))

    # -- indicators (compositions of the operators above; TA-Lib definitions) ----------------
    def rsi(self, n: int = 14) -> Expr:
        """Relative strength index with Wilder smoothing, 0..100 (TA-Lib RSI).

        >>> col("close").rsi(14).lookback
        14
        """
        change = self.diff(1)
        avg_gain = change.maximum(0.0).wilder(n)
        avg_loss = (-change).maximum(0.0).wilder(n)
        total = avg_gain + avg_loss
        return where(total == 0.0, 0.0 * avg_gain, 100.0 * avg_gain / total)

    def bollinger(self, n: int = 20, k: float = 2.0) -> Bollinger:
        """Bollinger bands ``(upper, middle, lower)``: SMA(n) +- k population standard
        deviations (TA-Lib BBANDS with SMA).

        >>> col("close").bollinger(20, 2).middle.op
        'rolling_mean'
        """
        middle = self.sma(n)
        width = as_expr(float(k)) * self.std(n)
        return Bollinger(middle + width, middle, middle - width)

    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> Macd:
        """MACD ``(macd, signal, hist)``: EMA fast - EMA slow, its signal EMA and the
        histogram. TA-Lib seeds the fast EMA later than a stand-alone EMA would; the two agree
        once that unstable period (a few times ``slow`` bars) has passed.

        >>> col("close").macd().hist.op
        'sub'
        """
        if fast >= slow:
            raise ValueError(f"macd: fast ({fast}) must be shorter than slow ({slow})")
        line = self.ema(fast) - self.ema(slow)
        sig = line.ema(signal)
        return Macd(line, sig, line - sig)

    def crossed_above(self, other: Expr | Number) -> Expr:
        """1.0 on the bar where ``self`` moves from at-or-below ``other`` to above it.

        >>> col("close").crossed_above(col("close").sma(20)).op
        'and'
        """
        other_e = as_expr(other)
        return (self > other_e) & (self.shift(1) <= other_e.shift(1))

    def crossed_below(self, other: Expr | Number) -> Expr:
        """1.0 on the bar where ``self`` moves from at-or-above ``other`` to below it.

        >>> col("close").crossed_below(50).op
        'and'
        """
        other_e = as_expr(other)
        return (self < other_e) & (self.shift(1) >= other_e.shift(1))


class Rolling:
    """A rolling window over an expression; ``apply(fn)`` runs ``fn`` on each window.

    ``fn`` receives a 1-D float array of the last ``n`` values, oldest first, and returns a
    float. The output is NaN until ``n`` values have been seen.

    >>> slope = col("close").rolling(10).apply(lambda w: (w[-1] - w[0]) / 9)
    >>> slope.lookback
    9
    """

    def __init__(self, expr: Expr, n: int) -> None:
        self.expr = expr
        self.n = n

    def apply(self, fn: Callable[[np.ndarray], float]) -> Expr:
        """Apply ``fn`` to every window (see the class docstring).

        >>> col("close").rolling(3).apply(max).params["n"]
        3
        """
        if not callable(fn):
            raise TypeError(f"rolling({self.n}).apply needs a function, got {fn!r}")
        return Expr("rolling_apply", self.expr, n=self.n, fn=fn)

    def mean(self) -> Expr:
        """Same as ``expr.sma(n)``.

        >>> col("close").rolling(3).mean().op
        'rolling_mean'
        """
        return self.expr.sma(self.n)

    def sum(self) -> Expr:
        """Same as ``expr.sum(n)``.

        >>> col("close").rolling(3).sum().op
        'rolling_sum'
        """
        return self.expr.sum(self.n)


class Bollinger(NamedTuple):
    """Bollinger bands as three expressions.

    >>> upper, middle, lower = col("close").bollinger(20, 2.0)
    >>> upper.op, lower.op
    ('add', 'sub')
    """

    upper: Expr
    middle: Expr
    lower: Expr


class Macd(NamedTuple):
    """MACD line, signal line and histogram as three expressions.

    >>> col("close").macd().macd.op
    'sub'
    """

    macd: Expr
    signal: Expr
    hist: Expr


def where(cond: Expr | Number, a: Expr | Number, b: Expr | Number) -> Expr:
    """``a`` where ``cond`` is true (nonzero, not NaN), else ``b``.

    >>> where(col("close") > col("open"), 1, -1).op
    'where'
    """
    return Expr("where", as_expr(cond), as_expr(a), as_expr(b))


def latch(enter: Expr | Number, leave: Expr | Number) -> Expr:
    """A position held between signals: 1.0 from a bar where ``enter`` is true until a bar
    where ``leave`` is true (``enter`` wins when both are), 0.0 before the first entry.

    The usual entry/exit rule (long below RSI 30, flat above 50) as one vectorized node.

    >>> r = col("close").rsi(14)
    >>> latch(r < 30, r > 50).op
    'latch'
    """
    return Expr("latch", as_expr(enter), as_expr(leave))
