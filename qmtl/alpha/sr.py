"""Symbolic-regression output as alpha text: an expression as sympy prints it, or the hall
of fame PySR writes (its CSV: ``Complexity``, ``Loss``, ``Equation``), with a mapping of
the tool's variables to fields or to any alpha text (``{"x0": "close", "x1": "returns"}``).

Both are parsed by the alpha language's own parser (never evaluated as Python): sympy's
``**`` is the language's ``^``, PySR's ``square``, ``cube``, ``neg``, ``sin``, ``cos``,
``exp``, ``log``, ``sqrt``, ``abs`` are operators of the language, and the constants ``E``
and ``pi`` are numbers. The text returned is what the alpha is made of, so it has the same
content id as the same text written by hand.

>>> sr_text("x0^2 - 0.5*sin(x1)", {"x0": "close", "x1": "returns"})
'close ^ 2 - 0.5 * sin(returns)'
>>> sr_text("x0 + x7", {"x0": "close"})
Traceback (most recent call last):
...
qmtl.alpha.syntax.AlphaSyntaxError: variable 'x7' has no mapping (variables: x0 -> close) \
at column 6
  x0 + x7
       ^
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qmtl.alpha.functions import _ADV, FIELDS
from qmtl.alpha.syntax import AlphaSyntaxError, Binary, Call, Name, Node, Num, Unary, parse, unparse

__all__ = ["Equation", "pysr_equations", "sr_text", "sympy_text"]

CONSTANTS = {"E": math.e, "pi": math.pi}
"""Names SR tools print for constants."""


def _rename(node: Node, variables: Mapping[str, Node], text: str, shown: str) -> Node:
    if isinstance(node, Name):
        if node.name in variables:
            return variables[node.name]
        if node.name in CONSTANTS:
            return Num(CONSTANTS[node.name])
        if node.name in FIELDS or _ADV.fullmatch(node.name):
            return node
        raise AlphaSyntaxError(f"variable {node.name!r} has no mapping (variables: {shown})",
                               text, node.column)
    if isinstance(node, Call):
        return Call(node.name, tuple(_rename(a, variables, text, shown) for a in node.args))
    if isinstance(node, Unary):
        return Unary(node.op, _rename(node.operand, variables, text, shown))
    if isinstance(node, Binary):
        return Binary(node.op, _rename(node.left, variables, text, shown),
                      _rename(node.right, variables, text, shown))
    return node


def sr_text(equation: str, variables: Mapping[str, str]) -> str:
    """The alpha text of an SR tool's equation, its variables replaced by their mapping
    (each an alpha text: a field or any expression); a variable left unmapped, that is no
    field either, is an error pointing at it.

    >>> sr_text("square(x0) / cube(neg(x1))", {"x0": "volume", "x1": "ts_mean(close, 5)"})
    'square(volume) / cube(neg(ts_mean(close, 5)))'
    """
    if not isinstance(variables, Mapping):
        raise TypeError("variables maps the tool's names to alpha text: {'x0': 'close', ...}")
    mapped = {k: parse(v) for k, v in variables.items()}
    shown = ", ".join(f"{k} -> {v}" for k, v in variables.items()) or "none"
    return unparse(_rename(parse(equation), mapped, equation, shown))


def sympy_text(expr: Any, variables: Mapping[str, str]) -> str:
    """The alpha text of a sympy expression (as ``str(expr)`` prints it; ``**`` is ``^``).

    >>> sympy_text("-x0**2 + Abs(x1)", {"x0": "close", "x1": "open"})
    '-close ^ 2 + Abs(open)'
    """
    printed = str(expr)
    if "**" in printed:
        printed = printed.replace("**", "^")
    return sr_text(printed, variables)


@dataclass(frozen=True)
class Equation:
    """One row of a PySR hall of fame: complexity, loss, the equation as PySR wrote it and
    the alpha text it becomes.

    >>> Equation(3, 0.5, "x0 * 2", "close * 2").text
    'close * 2'
    """

    complexity: int
    loss: float
    equation: str
    text: str
    line: int = 0


def pysr_equations(path: str | Path, variables: Mapping[str, str],
                   top: int | None = None) -> list[Equation]:
    """The equations of a PySR hall-of-fame CSV, lowest loss first (then lowest
    complexity), the ``top`` first when given; a malformed file or equation is an error
    naming the file and line.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "hall_of_fame.csv")
    >>> _ = open(p, "w").write('Complexity,Loss,Equation\\n1,0.9,"x0"\\n'
    ...                        '5,0.2,"(x0 * sin(x1))"\\n')
    >>> [(e.loss, e.text) for e in pysr_equations(p, {"x0": "returns", "x1": "close"})]
    [(0.2, 'returns * sin(close)'), (0.9, 'returns')]
    """
    if top is not None and top < 1:
        raise ValueError(f"top must be >= 1, got {top}")
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path}: empty file (a PySR hall of fame has a header "
                         "Complexity,Loss,Equation)")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("complexity", "loss", "equation") if c not in header]
    if missing:
        raise ValueError(f"{path}:1: a PySR hall of fame has the columns Complexity, Loss "
                         f"and Equation; missing {', '.join(missing)}")
    at = {c: header.index(c) for c in ("complexity", "loss", "equation")}
    out = []
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            complexity = int(float(row[at["complexity"]]))
            loss = float(row[at["loss"]])
            equation = row[at["equation"]]
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{line}: expected a complexity, a loss and an equation, "
                             f"got {','.join(row)!r}") from None
        try:
            text = sr_text(equation, variables)
        except AlphaSyntaxError as exc:
            raise AlphaSyntaxError(f"{path}:{line}: {exc.reason}", exc.text, exc.column,
                                   exc.hint) from None
        out.append(Equation(complexity, loss, equation, text, line))
    if not out:
        raise ValueError(f"{path}: no equations")
    out.sort(key=lambda e: (math.isnan(e.loss), e.loss, e.complexity))
    return out[:top] if top is not None else out
