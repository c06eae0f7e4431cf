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

try:  # lfilter's own filter, without its argument checks (~15 us a call: 2 per batch of RSI)
    from scipy.signal._sigtools import _linear_filter
except ImportError:  # pragma: no cover - a scipy without it: the public function
    _linear_filter = None

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
            out[i:], self.state = _filter(self.alpha, x[i:], self.state)
        return out


def _filter(alpha: float, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``lfilter([alpha], [1, alpha - 1], x, zi=state)``: the same call, without the public
    wrapper's checks when scipy has its filter under the known name (the arguments here are
    always float64 1-d arrays, which is what the checks would make of them).

    >>> y, z = _filter(0.5, np.array([1.0, 3.0]), np.array([1.0]))
    >>> y.tolist(), z.tolist()
    ([1.5, 2.25], [1.125])
    """
    b = np.array([alpha])
    a = np.array([1.0, alpha - 1.0])
    x = np.ascontiguousarray(x, dtype=np.float64)
    if _linear_filter is None:  # pragma: no cover
        return lfilter(b, a, x, zi=state)
    return _linear_filter(b, a, x, -1, state)
