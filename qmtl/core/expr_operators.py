"""Python's operators on expressions: arithmetic, comparisons and logic build nodes.

A mixin of :class:`~qmtl.core.expr.Expr`: each operator names the node it builds and leaves
building it to the expression class (:meth:`ExprOperators._bin`, ``_unary``), so this module
needs nothing of it. Comparisons give 1.0 / 0.0 (NaN compares false); ``&``, ``|`` and ``~``
act on truthiness.

>>> from qmtl.core.expr import col
>>> c = col("close")
>>> [e.op for e in (c + 1, 2 * c, c / c.shift(1), -c, c >= 3, (c > 1) & (c < 5), ~(c > 1))]
['add', 'mul', 'div', 'neg', 'ge', 'and', 'not']
>>> [i.op for i in (1 - c).inputs]      # a reflected operator keeps the operands' order
['const', 'col']
"""

from __future__ import annotations

from typing import Self

Number = int | float | bool
"""A Python number an operator accepts in place of an expression (it becomes a constant)."""


class ExprOperators:
    """Operator overloads in terms of two node builders the expression class provides.

    >>> from qmtl.core.expr import Expr
    >>> issubclass(Expr, ExprOperators)
    True
    """

    __slots__ = ()

    def _bin(self, op: str, other: Self | Number, reverse: bool = False) -> Self:
        """The node ``op(self, other)`` (``op(other, self)`` when ``reverse``)."""
        raise NotImplementedError

    def _unary(self, op: str) -> Self:
        """The node ``op(self)``."""
        raise NotImplementedError

    # -- arithmetic -----------------------------------------------------------------------
    def __add__(self, o: Self | Number) -> Self:
        return self._bin("add", o)

    def __radd__(self, o: Self | Number) -> Self:
        return self._bin("add", o, True)

    def __sub__(self, o: Self | Number) -> Self:
        return self._bin("sub", o)

    def __rsub__(self, o: Self | Number) -> Self:
        return self._bin("sub", o, True)

    def __mul__(self, o: Self | Number) -> Self:
        return self._bin("mul", o)

    def __rmul__(self, o: Self | Number) -> Self:
        return self._bin("mul", o, True)

    def __truediv__(self, o: Self | Number) -> Self:
        return self._bin("div", o)

    def __rtruediv__(self, o: Self | Number) -> Self:
        return self._bin("div", o, True)

    def __pow__(self, o: Self | Number) -> Self:
        return self._bin("pow", o)

    def __rpow__(self, o: Self | Number) -> Self:
        return self._bin("pow", o, True)

    def __neg__(self) -> Self:
        return self._unary("neg")

    def __pos__(self) -> Self:
        return self

    def __abs__(self) -> Self:
        return self._unary("abs")

    # -- comparisons and logic (results are 1.0 / 0.0; NaN compares false) -----------------
    def __lt__(self, o: Self | Number) -> Self:
        return self._bin("lt", o)

    def __le__(self, o: Self | Number) -> Self:
        return self._bin("le", o)

    def __gt__(self, o: Self | Number) -> Self:
        return self._bin("gt", o)

    def __ge__(self, o: Self | Number) -> Self:
        return self._bin("ge", o)

    def __eq__(self, o: object) -> Self:  # type: ignore[override]
        return self._bin("eq", o)  # type: ignore[arg-type]

    def __ne__(self, o: object) -> Self:  # type: ignore[override]
        return self._bin("ne", o)  # type: ignore[arg-type]

    def __and__(self, o: Self | Number) -> Self:
        return self._bin("and", o)

    def __rand__(self, o: Self | Number) -> Self:
        return self._bin("and", o, True)

    def __or__(self, o: Self | Number) -> Self:
        return self._bin("or", o)

    def __ror__(self, o: Self | Number) -> Self:
        return self._bin("or", o, True)

    def __invert__(self) -> Self:
        return self._unary("not")
