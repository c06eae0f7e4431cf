"""Kernels whose output depends on a carried state of their own: the latch (a position held
between an entry and an exit signal).

>>> k = make_kernel("latch", {})
>>> k.update(np.array([1.0, 0.0]), np.array([0.0, 0.0])).tolist()
[1.0, 1.0]
"""

from __future__ import annotations

import numpy as np

from dataflows.kernels.base import Kernel, make_kernel, register
from dataflows.kernels.elementwise import truthy

__all__ = ["Latch", "make_kernel"]


@register("latch")
class Latch(Kernel):
    """1.0 from a bar where ``enter`` is truthy until one where ``leave`` is (``enter`` wins
    when both are); the state is carried, so any split gives the same values.

    >>> k = Latch()
    >>> k.update(np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 0.0])).tolist()
    [0.0, 1.0, 1.0]
    >>> k.update(np.array([0.0, 1.0]), np.array([1.0, 1.0])).tolist()
    [0.0, 1.0]
    """

    def __init__(self) -> None:
        self.state = 0.0

    def update(self, enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
        m = len(enter)
        out = np.empty(m)
        if m == 0:
            return out
        on = truthy(enter)
        marked = np.flatnonzero(on | truthy(leave))  # the bars that set the state
        if not len(marked):
            out[:] = self.state
            return out
        value = on[marked]  # the state each of them sets; only its changes matter
        change = np.flatnonzero(value[1:] != value[:-1]) + 1
        starts = np.empty(len(change) + 2, dtype=np.int64)
        starts[0], starts[1:-1], starts[-1] = marked[0], marked[change], m
        levels = np.empty(len(change) + 1)
        levels[0], levels[1:] = value[0], value[change]
        out[: marked[0]] = self.state
        out[marked[0] :] = np.repeat(levels, np.diff(starts))  # one run per held state
        self.state = float(out[-1])
        return out
