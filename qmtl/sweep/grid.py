"""Parameter grids: value syntax, the ``--where`` filter and random sampling.

A parameter's values are written ``a:b:step`` (from ``a`` up to ``b`` by ``step``; ``b`` is
included when it falls on the step), ``a,b,c`` (a list) or one value; the Python API also
takes any iterable of values. The grid is every combination, in the order the parameters
are given, the last parameter changing fastest.

>>> class S(Strategy):
...     fast: int = 10
...     slow: int = 50
>>> expand(S, {"fast": "5:15:5", "slow": "20,50"}, where="fast * 4 < slow")
[{'fast': 5, 'slow': 50}, {'fast': 10, 'slow': 50}]
>>> expand(S, {"fsat": "5:15:5"})
Traceback (most recent call last):
...
qmtl.sweep.grid.GridError: S has no parameter 'fsat' (did you mean 'fast'?); parameters: fast, slow
"""

from __future__ import annotations

import ast
import difflib
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from qmtl.core.errors import QmtlError
from qmtl.strategy import Strategy, StrategyError, coerce_param

GridSpec = Mapping[str, str | Iterable[Any]]
"""Parameter name -> values: a text (``a:b:step``, ``a,b,c``) or an iterable of values."""


class GridError(QmtlError, ValueError):
    """A grid, a ``--where`` expression or a sampling option is malformed (the message says
    which and where).

    >>> parse_values("x", "1:5:0")
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: parameter 'x': step of '1:5:0' must be > 0
    """


def _number(name: str, text: str, whole: str) -> int | float:
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise GridError(f"parameter {name!r}: {text!r} in {whole!r} is not a number") from None
    if not math.isfinite(value):
        raise GridError(f"parameter {name!r}: {text!r} in {whole!r} is not a finite number")
    return value


def parse_values(name: str, text: str) -> list[Any]:
    """The values one ``-p name=...`` gives (numbers stay text for other kinds: the
    strategy's declared type decides).

    >>> parse_values("n", "5:20:5"), parse_values("n", "5:19:5"), parse_values("k", "0.5:1.5:0.5")
    ([5, 10, 15, 20], [5, 10, 15], [0.5, 1.0, 1.5])
    >>> parse_values("mode", "fast, slow"), parse_values("n", "7")
    (['fast', 'slow'], ['7'])
    """
    text = text.strip()
    if not text:
        raise GridError(f"parameter {name!r}: no values given")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise GridError(f"parameter {name!r}: a range is start:stop:step, got {text!r}")
        a, b, step = (_number(name, p, text) for p in parts)
        if step <= 0:
            raise GridError(f"parameter {name!r}: step of {text!r} must be > 0")
        if b < a:
            raise GridError(f"parameter {name!r}: range {text!r} ends before it starts")
        if all(isinstance(v, int) for v in (a, b, step)):
            return list(range(int(a), int(b) + 1, int(step)))
        count = math.floor((b - a) / step + 1e-9) + 1
        return [round(a + i * step, 12) for i in range(count)]
    values = [v.strip() for v in text.split(",")]
    if any(not v for v in values):
        raise GridError(f"parameter {name!r}: empty value in {text!r}")
    return values


def check_names(cls: type[Strategy], names: Iterable[str]) -> None:
    """Raise :class:`GridError` for a name that is not a parameter of ``cls``, suggesting
    the closest.

    >>> class S(Strategy):
    ...     window: int = 3
    >>> check_names(S, ["windw"])
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: S has no parameter 'windw' (did you mean 'window'?); ...
    """
    known = list(cls.parameters())
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GridError(f"{cls.__name__} has no parameter {name!r}{hint}; parameters: "
                            f"{', '.join(known) or '(none)'}")


def axis(cls: type[Strategy], name: str, values: str | Iterable[Any]) -> list[Any]:
    """One parameter's values, converted to its declared type, duplicates dropped.

    >>> class S(Strategy):
    ...     n: int = 3
    >>> axis(S, "n", "1,2,2"), axis(S, "n", range(1, 3))
    ([1, 2], [1, 2])
    >>> axis(S, "n", "1:2:0.5")
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: parameter 'n' of S expects int, got 1.5
    """
    raw = parse_values(name, values) if isinstance(values, str) else list(values)
    out: list[Any] = []
    for value in raw:
        try:
            typed = coerce_param(cls, name, value)
        except StrategyError as exc:
            raise GridError(str(exc)) from None
        default = getattr(cls, name)
        if isinstance(default, int) and not isinstance(default, bool) \
                and isinstance(typed, float):
            raise GridError(f"parameter {name!r} of {cls.__name__} expects int, got {value!r}")
        if typed not in out:
            out.append(typed)
    if not out:
        raise GridError(f"parameter {name!r}: no values given")
    return out


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


class Where:
    """A ``--where`` filter: names, numbers, comparisons, ``and``/``or``/``not`` and
    arithmetic, parsed with :mod:`ast` and evaluated by this class (never ``eval``).

    >>> w = Where("fast < slow and not slow % 2", ["fast", "slow"])
    >>> w({"fast": 5, "slow": 20}), w({"fast": 5, "slow": 21})
    (True, False)
    >>> Where("__import__('os')", ["fast"])
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: --where: a function call is not allowed (col 1): use names, ...
    >>> Where("fats < 3", ["fast"])
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: --where: unknown name 'fats' (did you mean 'fast'?)
    """

    def __init__(self, text: str, names: Iterable[str]) -> None:
        self.text = text
        try:
            self.tree = ast.parse(text.strip(), mode="eval").body
        except SyntaxError as exc:
            raise GridError(f"--where: invalid expression {text!r}: {exc.msg} "
                            f"(col {exc.offset})") from None
        self._check(self.tree, list(names))

    def _check(self, node: ast.AST, names: list[str]) -> None:
        ok = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
              ast.Compare, ast.BinOp, ast.Name, ast.Constant, ast.Load,
              *_BINARY, *_COMPARE)
        if not isinstance(node, ok) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, (int, float))
        ):
            what = {ast.Call: "a function call", ast.Attribute: "an attribute",
                    ast.Subscript: "a subscript", ast.Constant: "a text constant"}.get(
                        type(node), f"{type(node).__name__!r}")
            col = getattr(node, "col_offset", 0) + 1
            raise GridError(f"--where: {what} is not allowed (col {col}): use names, numbers, "
                            "comparisons, and/or/not and + - * / // % **")
        if isinstance(node, ast.Name) and node.id not in names:
            close = difflib.get_close_matches(node.id, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GridError(f"--where: unknown name {node.id!r}{hint}")
        for child in ast.iter_child_nodes(node):
            self._check(child, names)

    def _eval(self, node: ast.AST, env: Mapping[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, env) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, env)
            return (not value if isinstance(node.op, ast.Not)
                    else -value if isinstance(node.op, ast.USub) else +value)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](self._eval(node.left, env),
                                          self._eval(node.right, env))
        assert isinstance(node, ast.Compare)
        left = self._eval(node.left, env)
        for cmp, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._eval(right_node, env)
            if not _COMPARE[type(cmp)](left, right):
                return False
            left = right
        return True

    def __call__(self, params: Mapping[str, Any]) -> bool:
        """Whether the variant ``params`` passes (an arithmetic error fails the grid).

        >>> Where("a / b > 1", ["a", "b"])({"a": 1, "b": 0})
        Traceback (most recent call last):
        ...
        qmtl.sweep.grid.GridError: --where 'a / b > 1' failed for {'a': 1, 'b': 0}: division by zero
        """
        try:
            return bool(self._eval(self.tree, params))
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise GridError(f"--where {self.text!r} failed for {dict(params)}: {exc}") from None


def expand(
    cls: type[Strategy],
    grid: GridSpec,
    *,
    where: str | None = None,
    random: int | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Every variant of ``grid`` that passes ``where``; with ``random``, that many of them
    drawn without replacement (``seed``), kept in grid order. Parameters not in the grid
    keep the class defaults (and are not listed).

    >>> class S(Strategy):
    ...     a: int = 1
    ...     b: int = 2
    >>> len(expand(S, {"a": "1:10:1", "b": "1:10:1"}, random=5, seed=1))
    5
    >>> expand(S, {"a": "1,2"}, where="a > 5")
    Traceback (most recent call last):
    ...
    qmtl.sweep.grid.GridError: the grid is empty: --where 'a > 5' removes all 2 variants
    """
    if not grid:
        raise GridError(f"the grid is empty: give parameters of {cls.__name__} to sweep, "
                        f"e.g. -p {next(iter(cls.parameters()), 'name')}=1:10:1")
    check_names(cls, grid)
    axes = {name: axis(cls, name, values) for name, values in grid.items()}
    variants = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    if where:
        keep = Where(where, list(cls.parameters()))
        defaults = cls.parameters()
        total = len(variants)
        variants = [v for v in variants if keep({**defaults, **v})]
        if not variants:
            raise GridError(f"the grid is empty: --where {where!r} removes all {total} variants")
    if random is not None:
        if random < 1:
            raise GridError(f"--random must be >= 1, got {random}")
        if random < len(variants):
            picked = np.random.default_rng(seed).choice(len(variants), random, replace=False)
            variants = [variants[i] for i in sorted(int(i) for i in picked)]
    return variants
