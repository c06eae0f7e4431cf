"""Window operators of the alpha language that are nodes of their own (not compositions of
:class:`~qmtl.core.expr.Expr` methods): the rank of the current value in its window, and the
covariance and correlation of two series over a window. Their kernels are in
:mod:`dataflows.kernels.timeseries`.

>>> from qmtl.core.expr import col
>>> ts_rank(col("close"), 10).lookback, ts_corr(col("close"), col("volume"), 5).op
(9, 'ts_corr')
"""

from __future__ import annotations

from qmtl.core.expr import Expr, as_expr
from qmtl.core.expr_nodes import positive_window
from qmtl.core.expr_operators import Number

__all__ = ["ts_corr", "ts_cov", "ts_rank"]


def _window(name: str, n: int) -> int:
    """A window of at least two values (a rank or sample moment of one value is undefined).

    >>> _window("ts_rank", 1)
    Traceback (most recent call last):
    ...
    ValueError: ts_rank: window must be at least 2, got 1
    """
    n = positive_window(name, n)
    if n < 2:
        raise ValueError(f"{name}: window must be at least 2, got {n}")
    return n


def ts_rank(x: Expr | Number, n: int) -> Expr:
    """Rank of the current value among the last ``n`` values, scaled to [0, 1] (0: the
    smallest, 1: the largest; ties share their average rank).

    >>> from qmtl.core.expr import col
    >>> ts_rank(col("close"), 5).params
    {'n': 5}
    """
    return Expr("ts_rank", as_expr(x), n=_window("ts_rank", n))


def ts_cov(x: Expr | Number, y: Expr | Number, n: int) -> Expr:
    """Sample covariance (``ddof=1``) of ``x`` and ``y`` over the last ``n`` values.

    >>> from qmtl.core.expr import col
    >>> ts_cov(col("close"), col("open"), 20).lookback
    19
    """
    return Expr("ts_cov", as_expr(x), as_expr(y), n=_window("ts_cov", n))


def ts_corr(x: Expr | Number, y: Expr | Number, n: int) -> Expr:
    """Pearson correlation of ``x`` and ``y`` over the last ``n`` values (NaN where either
    is constant over the window).

    >>> from qmtl.core.expr import col
    >>> [i.op for i in ts_corr(col("close"), col("volume"), 10).inputs]
    ['col', 'col']
    """
    return Expr("ts_corr", as_expr(x), as_expr(y), n=_window("ts_corr", n))
