"""Recursive smoothing: the exponential moving average (TA-Lib EMA, and Wilder's smoothing
with ``alpha = 1/n``).

It runs ``scipy.signal.lfilter`` and carries its final state as is, so any split of the
stream gives the same bits. EMA skips leading NaNs before seeding; after seeding a NaN input
makes every later value NaN (so a strategy should not feed it interior NaNs).

>>> k = make_kernel("ema", {"n": 2, "alpha": 0.5})
>>> k.update(np.array([1.0, 3.0, 4.0])).tolist()
[nan, 2.0, 3.0]
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from dataflows.kernels.base import Kernel, make_kernel, register, window_length

__all__ = ["Ema", "make_kernel"]


@register("ema")
class Ema(Kernel):
    """Exponential smoothing ``y = alpha*x + (1-alpha)*y_prev``, seeded with the mean of the
    first ``n`` values (TA-Lib EMA with ``alpha = 2/(n+1)``; Wilder's with ``1/n``).

    >>> k = Ema(n=2, alpha=0.5)
    >>> k.update(np.array([np.nan, 1.0, 3.0])).tolist(), k.update(np.array([4.0])).tolist()
    ([nan, nan, 2.0], [3.0])
    """

    def __init__(self, n: int, alpha: float) -> None:
        self.n = window_length("ema", n)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"ema: alpha must be in (0, 1], got {alpha}")
        self.alpha = float(alpha)
        self.seed: list[float] = []
        self.state: np.ndarray | None = None

    def update(self, x: np.ndarray) -> np.ndarray:
        out = np.full(len(x), np.nan)
        i = 0
        while self.state is None and i < len(x):
            value = float(x[i])
            if self.seed or not np.isnan(value):
                self.seed.append(value)
                if len(self.seed) == self.n:
                    first = sum(self.seed) / self.n
                    out[i] = first
                    self.state = np.array([(1.0 - self.alpha) * first])
            i += 1
        if self.state is not None and i < len(x):
            if len(x) - i == 1:
                # lfilter's own recursion for one sample (y = z + b0*x; z = x*b1 - y*a1 with
                # b1 = 0): bit-identical, without its call overhead
                v = float(x[i])
                y = self.state[0] + self.alpha * v
                self.state = np.array([v * 0.0 - y * (self.alpha - 1.0)])
                out[i] = y
                return out
            y, self.state = lfilter([self.alpha], [1.0, self.alpha - 1.0], x[i:], zi=self.state)
            out[i:] = y
        return out
