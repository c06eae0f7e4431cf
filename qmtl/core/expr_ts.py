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

__all__ = ["ts_argmax", "ts_argmin", "ts_corr", "ts_cov", "ts_product", "ts_rank"]


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


def ts_argmax(x: Expr | Number, n: int) -> Expr:
    """Bars since the maximum of the last ``n`` values (0: the current one; of equal
    maxima, the most recent).

    >>> from qmtl.core.expr import col
    >>> ts_argmax(col("close"), 5).lookback
    4
    """
    return Expr("ts_argmax", as_expr(x), n=positive_window("ts_argmax", n))


def ts_argmin(x: Expr | Number, n: int) -> Expr:
    """Bars since the minimum of the last ``n`` values (0: the current one; ties: the most
    recent).

    >>> from qmtl.core.expr import col
    >>> ts_argmin(col("close"), 3).params
    {'n': 3}
    """
    return Expr("ts_argmin", as_expr(x), n=positive_window("ts_argmin", n))


def ts_product(x: Expr | Number, n: int) -> Expr:
    """Product of the last ``n`` values.

    >>> from qmtl.core.expr import col
    >>> ts_product(col("close"), 2).op
    'ts_product'
    """
    return Expr("ts_product", as_expr(x), n=positive_window("ts_product", n))
