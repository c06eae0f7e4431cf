"""The kernel contract: a node's batch evaluator with carried state.

A kernel is built once per symbol per node, from the node's parameters, and then fed every
batch of that symbol in time order: ``update(*inputs)`` takes equal-length float64 arrays (one
per input node) and returns a float64 array of the same length. State carried between calls
(ring buffers, running sums, last values) must make the output independent of how the stream
was split into batches: feeding ``x`` whole, or in any pieces down to one element, gives the
same values bit for bit.

>>> class Doubler(Kernel):
...     def update(self, x):
...         return 2.0 * x
>>> Doubler().update(np.array([1.0, 2.0]))
array([2., 4.])
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

KERNELS: dict[str, type[Kernel]] = {}
"""Registry: operator name -> kernel class (see :func:`register`)."""


class Kernel(ABC):
    """Base class of every batch kernel (see the module docstring for the contract).

    >>> Kernel()
    Traceback (most recent call last):
    ...
    TypeError: Can't instantiate abstract class Kernel with abstract method update
    """

    op: ClassVar[str] = ""

    @abstractmethod
    def update(self, *inputs: np.ndarray) -> np.ndarray:
        """Consume the next batch of each input; return this batch's output."""


def window_length(op: str, n: Any) -> int:
    """``n`` as a window length for operator ``op``, or a ValueError saying what was wrong.

    >>> window_length("shift", 2)
    2
    >>> window_length("shift", 1.5)
    Traceback (most recent call last):
    ...
    ValueError: shift: n must be a positive integer, got 1.5
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{op}: n must be a positive integer, got {n!r}")
    return int(n)


def register(op: str) -> Callable[[type[Kernel]], type[Kernel]]:
    """Class decorator: make ``cls`` the kernel of operator ``op``.

    >>> @register("_doc_identity")
    ... class Identity(Kernel):
    ...     def update(self, x):
    ...         return x
    >>> make_kernel("_doc_identity", {}).update(np.ones(2))
    array([1., 1.])
    """

    def deco(cls: type[Kernel]) -> type[Kernel]:
        if op in KERNELS:
            raise ValueError(f"kernel {op!r} registered twice")
        cls.op = op
        KERNELS[op] = cls
        return cls

    return deco


def make_kernel(op: str, params: dict[str, Any]) -> Kernel:
    """A fresh kernel for operator ``op`` with ``params`` as keyword arguments.

    >>> make_kernel("nope", {})
    Traceback (most recent call last):
    ...
    KeyError: "no kernel for operator 'nope'"
    """
    # importing this module runs dataflows/kernels/__init__.py first, which registers the
    # built-in kernels: the registry is full before anyone can call this
    try:
        cls = KERNELS[op]
    except KeyError:
        raise KeyError(f"no kernel for operator {op!r}") from None
    return cls(**params)
