"""The expression API: strategies are graphs of :class:`Expr` nodes with content ids.

An expression is built from bar columns with arithmetic, comparisons and indicator methods,
in the style of polars' expressions. Nothing is computed when it is built: each node records
its operator, parameters and inputs, and its ``id`` is a stable hash of those, so identical
sub-expressions (in one strategy or across strategies) are the same node and are computed once.

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

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

Number = int | float | bool

COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""Bar columns an expression may read."""

# Warm-up each stateful operator adds on top of its input's (bars before a defined value).
_OWN_LOOKBACK: dict[str, Callable[[dict[str, Any]], int]] = {
    "shift": lambda p: int(p["n"]),
    "rolling_sum": lambda p: int(p["n"]) - 1,
    "rolling_mean": lambda p: int(p["n"]) - 1,
    "rolling_var": lambda p: int(p["n"]) - 1,
    "rolling_min": lambda p: int(p["n"]) - 1,
    "rolling_max": lambda p: int(p["n"]) - 1,
    "wma": lambda p: int(p["n"]) - 1,
    "ema": lambda p: int(p["n"]) - 1,
    "rolling_apply": lambda p: int(p["n"]) - 1,
    "custom": lambda p: int(p.get("lookback", 0)),
}


def _canonical(value: Any) -> Any:
    """A JSON-able, stable form of a parameter value (for content ids)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)  # exact, and distinguishes nan/inf
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if callable(value):
        name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        digest = hashlib.sha256(source.encode()).hexdigest()[:16] if source else ""
        return f"callable:{name}:{digest}"
    return repr(value)


def _content_id(op: str, params: dict[str, Any], inputs: tuple[Expr, ...]) -> str:
    payload = json.dumps([op, _canonical(params), [i.id for i in inputs]], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def lit(value: Number) -> Expr:
    """A constant expression.

    >>> lit(1.5).params["value"]
    1.5
    """
    return Expr("const", value=float(value))


def col(name: str) -> Expr:
    """A bar column: one of open, high, low, close, volume.

    >>> col("close").params
    {'name': 'close'}
    >>> col("vwap")
    Traceback (most recent call last):
    ...
    ValueError: unknown column 'vwap': use one of open, high, low, close, volume
    """
    if name not in COLUMNS:
        raise ValueError(f"unknown column {name!r}: use one of {', '.join(COLUMNS)}")
    return Expr("col", name=name)


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


def _positive_int(name: str, n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: window must be a positive integer, got {n!r}")
    return int(n)


class Expr:
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
        self.id = _content_id(op, self.params, self.inputs)
        own = _OWN_LOOKBACK.get(op)
        base = max((i.lookback for i in self.inputs), default=0)
        self.lookback: int = base + (own(self.params) if own else 0)

    # -- identity -------------------------------------------------------------------------
    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        args = [repr(i) for i in self.inputs]
        args += [f"{k}={_canonical(v)!s}" for k, v in self.params.items() if k != "fn"]
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

    # -- arithmetic -----------------------------------------------------------------------
    def _bin(self, op: str, other: Expr | Number, reverse: bool = False) -> Expr:
        other_e = as_expr(other)
        return Expr(op, other_e, self) if reverse else Expr(op, self, other_e)

    def __add__(self, o: Expr | Number) -> Expr:
        return self._bin("add", o)

    def __radd__(self, o: Expr | Number) -> Expr:
        return self._bin("add", o, True)

    def __sub__(self, o: Expr | Number) -> Expr:
        return self._bin("sub", o)

    def __rsub__(self, o: Expr | Number) -> Expr:
        return self._bin("sub", o, True)

    def __mul__(self, o: Expr | Number) -> Expr:
        return self._bin("mul", o)

    def __rmul__(self, o: Expr | Number) -> Expr:
        return self._bin("mul", o, True)

    def __truediv__(self, o: Expr | Number) -> Expr:
        return self._bin("div", o)

    def __rtruediv__(self, o: Expr | Number) -> Expr:
        return self._bin("div", o, True)

    def __pow__(self, o: Expr | Number) -> Expr:
        return self._bin("pow", o)

    def __rpow__(self, o: Expr | Number) -> Expr:
        return self._bin("pow", o, True)

    def __neg__(self) -> Expr:
        return Expr("neg", self)

    def __pos__(self) -> Expr:
        return self

    def __abs__(self) -> Expr:
        return Expr("abs", self)

    # -- comparisons and logic (results are 1.0 / 0.0; NaN compares false) -----------------
    def __lt__(self, o: Expr | Number) -> Expr:
        return self._bin("lt", o)

    def __le__(self, o: Expr | Number) -> Expr:
        return self._bin("le", o)

    def __gt__(self, o: Expr | Number) -> Expr:
        return self._bin("gt", o)

    def __ge__(self, o: Expr | Number) -> Expr:
        return self._bin("ge", o)

    def __eq__(self, o: object) -> Expr:  # type: ignore[override]
        return self._bin("eq", o)  # type: ignore[arg-type]

    def __ne__(self, o: object) -> Expr:  # type: ignore[override]
        return self._bin("ne", o)  # type: ignore[arg-type]

    def __and__(self, o: Expr | Number) -> Expr:
        return self._bin("and", o)

    def __rand__(self, o: Expr | Number) -> Expr:
        return self._bin("and", o, True)

    def __or__(self, o: Expr | Number) -> Expr:
        return self._bin("or", o)

    def __ror__(self, o: Expr | Number) -> Expr:
        return self._bin("or", o, True)

    def __invert__(self) -> Expr:
        return Expr("not", self)

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
        return Expr("shift", self, n=_positive_int("shift", n))

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
        return Expr("rolling_sum", self, n=_positive_int("sum", n))

    def sma(self, n: int) -> Expr:
        """Simple moving average over ``n`` bars (TA-Lib SMA).

        >>> col("close").sma(10).lookback
        9
        """
        return Expr("rolling_mean", self, n=_positive_int("sma", n))

    mean = sma

    def ema(self, n: int) -> Expr:
        """Exponential moving average, alpha = 2/(n+1), seeded with the SMA of the first ``n``
        values (TA-Lib EMA).

        >>> round(col("close").ema(9).params["alpha"], 3)
        0.2
        """
        n = _positive_int("ema", n)
        return Expr("ema", self, n=n, alpha=2.0 / (n + 1))

    def wilder(self, n: int) -> Expr:
        """Wilder's smoothing: an EMA with alpha = 1/n, SMA-seeded (as in RSI and ATR).

        >>> col("close").wilder(14).params["alpha"] == 1 / 14
        True
        """
        n = _positive_int("wilder", n)
        return Expr("ema", self, n=n, alpha=1.0 / n)

    def wma(self, n: int) -> Expr:
        """Linearly weighted moving average, newest weight ``n`` (TA-Lib WMA).

        >>> col("close").wma(5).op
        'wma'
        """
        return Expr("wma", self, n=_positive_int("wma", n))

    def var(self, n: int, ddof: int = 0) -> Expr:
        """Rolling variance over ``n`` bars; population (``ddof=0``) by default, as TA-Lib.

        >>> col("close").var(20, ddof=1).params
        {'ddof': 1, 'n': 20}
        """
        n = _positive_int("var", n)
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
        return Expr("rolling_min", self, n=_positive_int("min", n))

    def max(self, n: int) -> Expr:
        """Rolling maximum over ``n`` bars.

        >>> col("high").max(20).op
        'rolling_max'
        """
        return Expr("rolling_max", self, n=_positive_int("max", n))

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
        return Rolling(self, _positive_int("rolling", n))

    # -- indicators ---------------------------------------------------------------------------
    def rsi(self, n: int = 14) -> Expr:
        """Relative strength index (TA-Lib RSI, Wilder smoothing), 0..100.

        >>> col("close").rsi(14).lookback
        14
        """
        from qmtl import indicators

        return indicators.rsi(self, n)

    def bollinger(self, n: int = 20, k: float = 2.0) -> Bollinger:
        """Bollinger bands ``(upper, middle, lower)`` (TA-Lib BBANDS with SMA).

        >>> col("close").bollinger(20, 2).middle.op
        'rolling_mean'
        """
        from qmtl import indicators

        return indicators.bollinger(self, n, k)

    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> Macd:
        """MACD ``(macd, signal, hist)`` from EMAs (TA-Lib MACD after its unstable period).

        >>> col("close").macd().hist.op
        'sub'
        """
        from qmtl import indicators

        return indicators.macd(self, fast, slow, signal)

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
        """Apply ``fn`` to every window (see the class docstring)."""
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
    """Bollinger bands as three expressions."""

    upper: Expr
    middle: Expr
    lower: Expr


class Macd(NamedTuple):
    """MACD line, signal line and histogram as three expressions."""

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


def walk(outputs: Iterable[Expr]) -> Iterator[Expr]:
    """Every distinct node reachable from ``outputs``, each once, inputs before users.

    >>> c = col("close")
    >>> [n.op for n in walk([c.sma(3) - c.sma(3), c])]
    ['col', 'rolling_mean', 'sub']
    """
    seen: set[str] = set()
    stack: list[tuple[Expr, bool]] = [(e, False) for e in reversed(list(outputs))]
    while stack:
        node, expanded = stack.pop()
        if node.id in seen:
            continue
        if expanded:
            seen.add(node.id)
            yield node
            continue
        stack.append((node, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i.id not in seen)
