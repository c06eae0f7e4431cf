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
        if m == 0:
            return np.empty(0)
        on = truthy(enter)
        marked = on | truthy(leave)
        last = np.where(marked, np.arange(m), -1)
        np.maximum.accumulate(last, out=last)
        out = np.where(last >= 0, on[np.maximum(last, 0)], self.state).astype(np.float64)
        self.state = float(out[-1])
        return out
