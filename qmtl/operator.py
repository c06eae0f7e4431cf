"""User-defined operators with carried state.

Where the expression API lacks something, subclass :class:`Operator`: ``update`` receives the
next batch of each input (equal-length float64 arrays, in time order) and returns one output
value per element. Call an instance on expressions to put it in a strategy graph. The engine
builds one fresh instance per symbol (with the same constructor arguments) and feeds it every
batch of that symbol.

The contract, which makes replay and live the same program: the output for an element may
depend only on that element and earlier ones, and must not depend on how the stream was cut
into batches. Keep whatever you need from earlier batches on ``self``. Check it with
:func:`check_batch_invariance`. Set ``lookback`` to the number of bars your operator needs
before its output is meaningful, so warm-up is inferred correctly.

>>> import numpy as np
>>> from qmtl.core.expr import col
>>> class RunLength(Operator):
...     '''Number of consecutive bars the input has been positive.'''
...     def __init__(self):
...         self.run = 0.0
...     def update(self, x):
...         out = np.empty_like(x)
...         for i, v in enumerate(x):
...             self.run = self.run + 1.0 if v > 0 else 0.0
...             out[i] = self.run
...         return out
>>> node = RunLength()(col("close").diff())
>>> node.op
'custom'
>>> check_batch_invariance(RunLength, [np.array([1.0, 2.0, -1.0, 3.0, 4.0])])
array([1., 2., 0., 1., 2.])
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from qmtl.core.expr import Expr, as_expr


class Operator:
    """Base class of user operators (see the module docstring)."""

    lookback: int = 0
    _qmtl_args: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Operator:
        self = super().__new__(cls)
        self._qmtl_args = (args, kwargs)
        return self

    def update(self, *inputs: np.ndarray) -> np.ndarray:
        """Consume the next batch of each input and return this batch's output."""
        raise NotImplementedError(f"{type(self).__name__} must define update(self, *inputs)")

    def __call__(self, *inputs: Expr | float) -> Expr:
        """Put this operator in a graph, applied to ``inputs``."""
        args, kwargs = self._qmtl_args
        return Expr(
            "custom",
            *(as_expr(i) for i in inputs),
            cls=type(self),
            args=list(args),
            kwargs=dict(kwargs),
            lookback=int(self.lookback),
        )


def check_batch_invariance(
    cls: type[Operator],
    inputs: list[np.ndarray],
    *args: Any,
    seed: int = 0,
    **kwargs: Any,
) -> np.ndarray:
    """Run ``cls(*args, **kwargs)`` over ``inputs`` whole, one element at a time and in random
    pieces; raise AssertionError if the outputs differ; return the whole-stream output.

    >>> class Bad(Operator):
    ...     def update(self, x):
    ...         return x - x.mean()     # depends on the batch: not allowed
    >>> check_batch_invariance(Bad, [np.array([1.0, 2.0, 3.0])])
    Traceback (most recent call last):
    ...
    AssertionError: Bad: output depends on how the input was split into batches (at index 0)
    """
    arrays = [np.asarray(x, dtype=np.float64) for x in inputs]
    n = len(arrays[0])
    whole = np.asarray(cls(*args, **kwargs).update(*arrays), dtype=np.float64)
    rng = np.random.default_rng(seed)
    splits = [
        list(range(1, n)),
        sorted(
            rng.choice(np.arange(1, max(n, 2)), size=min(3, max(n - 1, 0)), replace=False).tolist()
        ),
    ]
    for cuts in splits:
        op = cls(*args, **kwargs)
        bounds = [0, *cuts, n]
        parts = [
            np.asarray(op.update(*(a[lo:hi] for a in arrays)), dtype=np.float64)
            for lo, hi in itertools.pairwise(bounds)
        ]
        pieced = np.concatenate(parts) if parts else np.empty(0)
        same = (pieced == whole) | (np.isnan(pieced) & np.isnan(whole))
        if not same.all():
            first = int(np.argmin(same))
            raise AssertionError(
                f"{cls.__name__}: output depends on how the input was split into batches "
                f"(at index {first})"
            )
    return whole
