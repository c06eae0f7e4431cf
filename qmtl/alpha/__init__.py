"""Alpha expressions as text, and strategies as data.

- :mod:`qmtl.alpha.syntax`: the grammar, a hand-written Pratt parser and the printer;
- :mod:`qmtl.alpha.functions`: the operators and fields, and the syntax tree as an
  :class:`~qmtl.core.expr.Expr` graph;
- :mod:`qmtl.alpha.graph`: an expression graph as JSON nodes, and back;
- :mod:`qmtl.alpha.spec`: a whole strategy as a versioned JSON spec (``qmtl.from_spec``);
- :mod:`qmtl.alpha.api`: ``qmtl.alpha(text, ...)`` and ``qmtl.alphas([...])``.

``qmtl.alpha`` the function is the package's entry point (``qmtl.alpha("rank(close)")``);
this package's modules are imported by their full names. Nothing is imported here, so
:mod:`qmtl.strategy` can use :mod:`qmtl.alpha.graph` without a cycle.

>>> from qmtl.alpha.syntax import parse
>>> parse("close").name
'close'
"""
