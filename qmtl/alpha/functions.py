"""The alpha language's operators and fields, and a syntax tree as an expression graph.

Time-series operators act on each symbol's own history and map onto the expression API
(``ts_mean`` is ``sma``, ``delay`` is ``shift``, ``decay_linear`` is ``wma``...) or onto
the window nodes of :mod:`qmtl.core.expr_ts`; cross-sectional ones (``rank``, ``zscore``,
``demean``, ``scale``, ``group_neutralize``) act across the universe at each bar time and
map onto :mod:`qmtl.cs`. A sub-expression written twice is one node (content ids), so it is
computed once however many alphas share it.

>>> from qmtl.alpha.syntax import parse
>>> e = to_expr(parse("ts_mean(close, 5) - delay(close, 2)"), "")
>>> e.op, [i.op for i in e.inputs]
('sub', ['rolling_mean', 'shift'])
>>> to_expr(parse("ts_mean(clsoe, 5)"), "ts_mean(clsoe, 5)")
Traceback (most recent call last):
...
qmtl.alpha.syntax.AlphaSyntaxError: unknown field 'clsoe' at column 9: did you mean 'close'?
  ts_mean(clsoe, 5)
          ^
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from qmtl import cs
from qmtl.alpha.syntax import AlphaSyntaxError, Binary, Call, Name, Node, Num, Unary
from qmtl.core.expr import Expr, col, lit, where
from qmtl.core.expr_ts import ts_argmax, ts_argmin, ts_corr, ts_cov, ts_product, ts_rank

__all__ = ["ALIASES", "FIELDS", "FUNCTIONS", "Function", "adv", "field_expr", "group_levels",
           "to_expr"]

Groups = Mapping[str, str] | Mapping[str, Mapping[str, str]]
"""A group label per symbol (``{"AAPL": "tech", ...}``), for ``group_neutralize(x, group)``;
or group levels by name (``{"sector": {...}, "industry": {...}}``, the columns of a groups
file), for ``indneutralize(x, IndClass.sector)``: the first level is then ``group``."""


def group_levels(groups: Groups | None) -> tuple[dict[str, str] | None, dict[str, dict[str, str]]]:
    """The flat group map (``group``) and the levels by name of ``groups`` (a flat map is the
    one level ``group``).

    >>> group_levels({"sector": {"A": "tech"}, "industry": {"A": "chips"}})
    ({'A': 'tech'}, {'sector': {'A': 'tech'}, 'industry': {'A': 'chips'}})
    >>> group_levels({"A": "tech"})
    ({'A': 'tech'}, {'group': {'A': 'tech'}})
    """
    if not groups:
        return None, {}
    if all(isinstance(v, Mapping) for v in groups.values()):
        levels = {str(k): dict(v) for k, v in groups.items()}  # type: ignore[call-overload]
        return next(iter(levels.values())), levels
    flat = dict(groups)  # type: ignore[arg-type]
    return flat, {"group": flat}  # type: ignore[dict-item]


def vwap() -> Expr:
    """The typical price ``(high + low + close) / 3``: QMTL's bars have no traded-volume
    weighted price, so ``vwap`` stands for it.

    >>> vwap().op
    'div'
    """
    return (col("high") + col("low") + col("close")) / 3.0


FIELDS: dict[str, Callable[[], Expr]] = {
    "open": lambda: col("open"),
    "high": lambda: col("high"),
    "low": lambda: col("low"),
    "close": lambda: col("close"),
    "volume": lambda: col("volume"),
    "returns": lambda: col("close").pct_change(1),
    "vwap": vwap,
}
"""The fields an alpha reads: the bar columns, ``returns`` (close to close) and ``vwap``."""


def field_expr(name: str) -> Expr:
    """The expression of a field.

    >>> field_expr("returns").lookback
    1
    """
    return FIELDS[name]()


def adv(d: int) -> Expr:
    """``adv{d}`` of the paper, the average daily dollar volume of the last ``d`` bars:
    ``ts_mean(vwap * volume, d)`` (a bar's dollar volume is its vwap times its volume).

    >>> adv(20).lookback
    19
    """
    return (vwap() * col("volume")).sma(d)


_ADV = re.compile(r"adv([1-9][0-9]*)")
_MISSING_FIELDS = {
    "cap": "market capitalization: QMTL's bars have no shares outstanding",
}


@dataclass(frozen=True)
class Function:
    """An operator of the language: its argument names, how many trailing ones are
    optional, its kind and how it builds its node. Argument ``d`` is a window (a whole
    number >= 1), ``a`` a number, ``group`` the name ``group``; the others are expressions.

    >>> FUNCTIONS["ts_corr"].signature("ts_corr")
    'ts_corr(x, y, d)'
    """

    args: tuple[str, ...]
    build: Callable[..., Expr]
    kind: str
    doc: str
    optional: int = 0

    def signature(self, name: str) -> str:
        """How the operator is called, e.g. ``ts_mean(x, d)``.

        >>> FUNCTIONS["scale"].signature("scale")
        'scale(x, [a])'
        """
        required = len(self.args) - self.optional
        shown = [a if i < required else f"[{a}]" for i, a in enumerate(self.args)]
        return f"{name}({', '.join(shown)})"


def _ts(args: tuple[str, ...], build: Callable[..., Expr], doc: str) -> Function:
    return Function(args, build, "time series", doc)


def _el(args: tuple[str, ...], build: Callable[..., Expr], doc: str) -> Function:
    return Function(args, build, "elementwise", doc)


def _ts_std(x: Expr, d: int) -> Expr:
    if d < 2:
        raise ValueError(f"window must be at least 2 (a sample deviation), got {d}")
    return x.std(d, ddof=1)


FUNCTIONS: dict[str, Function] = {
    "ts_mean": _ts(("x", "d"), lambda x, d: x.sma(d), "mean of the last d values"),
    "ts_sum": _ts(("x", "d"), lambda x, d: x.sum(d), "sum of the last d values"),
    "ts_std": _ts(("x", "d"), _ts_std, "sample standard deviation (ddof=1) of the last d"),
    "ts_delta": _ts(("x", "d"), lambda x, d: x.diff(d), "x minus its value d bars ago"),
    "delay": _ts(("x", "d"), lambda x, d: x.shift(d), "the value d bars ago"),
    "ts_min": _ts(("x", "d"), lambda x, d: x.min(d), "minimum of the last d values"),
    "ts_max": _ts(("x", "d"), lambda x, d: x.max(d), "maximum of the last d values"),
    "ts_rank": _ts(("x", "d"), ts_rank,
                   "rank of the current value among the last d, in [0, 1]"),
    "ts_corr": _ts(("x", "y", "d"), ts_corr, "Pearson correlation over the last d values"),
    "ts_cov": _ts(("x", "y", "d"), ts_cov, "sample covariance over the last d values"),
    "ts_zscore": _ts(("x", "d"), lambda x, d: (x - x.sma(d)) / _ts_std(x, d),
                     "(x - ts_mean(x, d)) / ts_std(x, d)"),
    "decay_linear": _ts(("x", "d"), lambda x, d: x.wma(d),
                        "linearly weighted mean of the last d, newest weight d"),
    "rank": Function(("x",), cs.rank, "cross section",
                     "rank across the symbols at each bar time, in [0, 1]"),
    "zscore": Function(("x",), cs.zscore, "cross section",
                       "(x - mean) / std across the symbols"),
    "demean": Function(("x",), cs.demean, "cross section",
                       "x minus its mean across the symbols"),
    "scale": Function(("x", "a"), lambda x, a=1.0: cs.scale(x, gross=a),
                      "cross section", "x scaled so that sum |x| = a (default 1)", 1),
    "group_neutralize": Function(("x", "group"), cs.neutralize,
                                 "cross section", "x minus its mean within each group"),
    "abs": _el(("x",), lambda x: x.abs(), "absolute value"),
    "log": _el(("x",), lambda x: x.log(), "natural logarithm"),
    "exp": _el(("x",), lambda x: x.exp(), "exponential"),
    "sqrt": _el(("x",), lambda x: x.sqrt(), "square root"),
    "sign": _el(("x",), lambda x: x.sign(), "-1, 0 or 1"),
    "sin": _el(("x",), lambda x: Expr("sin", x), "sine (radians)"),
    "cos": _el(("x",), lambda x: Expr("cos", x), "cosine (radians)"),
    "square": _el(("x",), lambda x: x**2.0, "x ^ 2 (one node with power(x, 2))"),
    "cube": _el(("x",), lambda x: x**3.0, "x ^ 3 (one node with power(x, 3))"),
    "power": _el(("x", "y"), lambda x, y: x**y, "x to the power y"),
    "signed_power": _el(("x", "y"), lambda x, y: x.sign() * x.abs() ** y,
                        "sign(x) * abs(x) ^ y"),
    "max": _el(("x", "y"), lambda x, y: x.maximum(y), "the larger of x and y"),
    "min": _el(("x", "y"), lambda x, y: x.minimum(y), "the smaller of x and y"),
    "if_else": _el(("c", "x", "y"), lambda c, x, y: where(c, x, y),
                   "x where c is true (nonzero, not NaN), else y (also c ? x : y)"),
    "ts_argmax": _ts(("x", "d"), ts_argmax,
                     "bars since the maximum of the last d (0: now; ties: the most recent)"),
    "ts_argmin": _ts(("x", "d"), ts_argmin,
                     "bars since the minimum of the last d (0: now; ties: the most recent)"),
    "ts_product": _ts(("x", "d"), ts_product, "product of the last d values"),
    "indneutralize": Function(("x", "group"), cs.neutralize, "cross section",
                              "x minus its mean within each group of a level: "
                              "indneutralize(x, IndClass.sector)"),
    "and": _el(("x", "y"), lambda x, y: x & y, "1 where both are true, else 0"),
    "or": _el(("x", "y"), lambda x, y: x | y, "1 where either is true, else 0"),
    "not": _el(("x",), lambda x: ~x, "1 where x is false (zero or NaN), else 0"),
    "negate": _el(("x",), lambda x: -x, "-x (PySR writes neg(x))"),
}
"""Every operator of the language by name."""

ALIASES: dict[str, str] = {
    "delta": "ts_delta",
    "correlation": "ts_corr",
    "covariance": "ts_cov",
    "stddev": "ts_std",
    "sum": "ts_sum",
    "product": "ts_product",
    "signedpower": "signed_power",
    "ts_arg_max": "ts_argmax",
    "ts_arg_min": "ts_argmin",
    "ts_std_dev": "ts_std",
    "neg": "negate",
}
"""The names of "101 Formulaic Alphas" (Kakushadze 2016) for operators of the language:
one operator, one kernel, one content id (``delta(close, 1)`` is ``ts_delta(close, 1)``).
Names are also found regardless of case (the paper writes ``Ts_ArgMax``, ``SignedPower``,
``IndNeutralize``, ``Log``)."""


def lookup(name: str) -> str | None:
    """The operator a name means: itself, an alias, or either in lower case.

    >>> lookup("Ts_ArgMax"), lookup("delta"), lookup("SignedPower"), lookup("nope")
    ('ts_argmax', 'ts_delta', 'signed_power', None)
    """
    for n in (name, name.lower()):
        if n in FUNCTIONS:
            return n
        if n in ALIASES:
            return ALIASES[n]
    return None

_COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}


def start(node: Node) -> int:
    """The column where ``node``'s text starts.

    >>> from qmtl.alpha.syntax import parse
    >>> start(parse("close + 1"))
    1
    """
    while isinstance(node, Binary):
        node = node.left
    return node.column


def _suggest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name.lower(), list(known), n=1)
    if not close:
        return ""
    meant = ALIASES.get(close[0])
    also = f" (the paper's name for {meant!r})" if meant else ""
    return f": did you mean {close[0]!r}?{also}"


class _Compiler:
    def __init__(self, text: str, groups: Groups | None) -> None:
        self.text = text
        self.groups, self.levels = group_levels(groups)

    def fail(self, reason: str, column: int, hint: str = "") -> AlphaSyntaxError:
        return AlphaSyntaxError(reason, self.text, column, hint)

    def expr(self, node: Node) -> Expr:
        if isinstance(node, Num):
            return lit(node.value)
        if isinstance(node, Name):
            return self.name(node)
        if isinstance(node, Unary):
            if node.op == "+":
                return self.expr(node.operand)
            if isinstance(node.operand, Num):  # a negative literal is one constant
                return lit(-node.operand.value)
            return -self.expr(node.operand)
        if isinstance(node, Binary):
            left, right = self.expr(node.left), self.expr(node.right)
            if node.op in _COMPARE:
                return left._bin(_COMPARE[node.op], right)
            ops: dict[str, Callable[[Expr, Expr], Expr]] = {
                "+": lambda a, b: a + b, "-": lambda a, b: a - b,
                "*": lambda a, b: a * b, "/": lambda a, b: a / b,
                "^": lambda a, b: a**b, "||": lambda a, b: a | b, "&&": lambda a, b: a & b,
            }
            return ops[node.op](left, right)
        return self.call(node)

    def name(self, node: Name) -> Expr:
        if node.name in FIELDS:
            return field_expr(node.name)
        adv_days = _ADV.fullmatch(node.name)
        if adv_days:
            return adv(int(adv_days.group(1)))
        if node.name in _MISSING_FIELDS:
            raise self.fail(f"no field {node.name!r} ({_MISSING_FIELDS[node.name]})",
                            node.column)
        op = lookup(node.name)
        if op is not None:
            raise self.fail(f"{node.name!r} is an operator: call it as "
                            f"{FUNCTIONS[op].signature(node.name)}", node.column)
        if node.name == "group" or node.name.startswith("IndClass."):
            raise self.fail(f"{node.name!r} is only the second argument of group_neutralize "
                            "or indneutralize", node.column)
        raise self.fail(f"unknown field {node.name!r}", node.column,
                        _suggest(node.name, [*FIELDS, "adv20"]))

    def call(self, node: Call) -> Expr:
        op = lookup(node.name)
        fn = FUNCTIONS.get(op) if op is not None else None
        if fn is None:
            if node.name in FIELDS:
                raise self.fail(f"{node.name!r} is a field, not an operator", node.column)
            raise self.fail(f"unknown operator {node.name!r}", node.column,
                            _suggest(node.name, [*FUNCTIONS, *ALIASES]))
        required = len(fn.args) - fn.optional
        if not required <= len(node.args) <= len(fn.args):
            count = str(required) if not fn.optional else f"{required} to {len(fn.args)}"
            plural = "" if count == "1" else "s"
            raise self.fail(f"{node.name} takes {count} argument{plural}, "
                            f"{fn.signature(node.name)}, got {len(node.args)}", node.column)
        values = [self.argument(node.name, kind, arg) for kind, arg in
                  zip(fn.args, node.args, strict=False)]
        try:
            return fn.build(*values)
        except ValueError as exc:
            raise self.fail(f"{node.name}: {exc}", node.column) from None

    def argument(self, fn: str, kind: str, arg: Node) -> Any:
        if kind == "d":  # as the paper says: a fractional number of days is floored
            if not (isinstance(arg, Num) and math.isfinite(arg.value) and arg.value >= 1):
                raise self.fail(f"{fn}: the window d must be a number >= 1 (a fraction is "
                                "floored)", start(arg))
            return math.floor(arg.value)
        if kind == "a":
            value = -arg.operand.value if (isinstance(arg, Unary) and arg.op == "-"
                                           and isinstance(arg.operand, Num)) else None
            value = arg.value if isinstance(arg, Num) else value
            if value is None:
                raise self.fail(f"{fn}: argument a must be a number", start(arg))
            return float(value)
        if kind == "group":
            if not (isinstance(arg, Name) and (arg.name == "group"
                                               or arg.name.startswith("IndClass."))):
                raise self.fail(f"{fn}: the second argument is the name group (the "
                                "groups={symbol: group} map of the alpha) or a level "
                                "IndClass.sector|industry|subindustry", start(arg))
            if not self.groups:
                raise self.fail(f"{fn} needs groups={{symbol: group}}: this alpha has none",
                                arg.column)
            if arg.name == "group":
                return dict(self.groups)
            level = arg.name.removeprefix("IndClass.")
            if level not in self.levels:
                raise self.fail(f"{fn}: no group level {level!r} (the groups have "
                                f"{', '.join(self.levels)}: a groups file's columns)",
                                arg.column)
            return dict(self.levels[level])
        return self.expr(arg)


def to_expr(tree: Node, text: str, groups: Groups | None = None) -> Expr:
    """The expression graph of a syntax tree; ``text`` is the source, for error messages,
    and ``groups`` the map ``group_neutralize`` uses.

    >>> from qmtl.alpha.syntax import parse
    >>> to_expr(parse("ts_mean(close)"), "ts_mean(close)")
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: ts_mean takes 2 arguments, ts_mean(x, d), got 1 at \
column 1
      ts_mean(close)
      ^
    """
    try:
        return _Compiler(text, groups).expr(tree)
    except RecursionError:
        raise AlphaSyntaxError("the alpha nests too deeply", text, 1) from None
