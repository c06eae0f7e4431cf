"""Batch kernels of every operator; importing this package registers the built-in ones.

- :mod:`~dataflows.kernels.base`: the :class:`Kernel` contract and the registry;
- :mod:`~dataflows.kernels.elementwise`: arithmetic, functions, comparisons, logic;
- :mod:`~dataflows.kernels.rolling`: shift and window statistics;
- :mod:`~dataflows.kernels.smoothing`: exponential smoothing (EMA, Wilder);
- :mod:`~dataflows.kernels.state`: kernels with a state of their own (latch);
- :mod:`~dataflows.kernels.timeseries`: the alpha language's window rank, covariance and
  correlation.

>>> sorted(k for k in KERNELS if k.startswith("rolling_"))[:3]
['rolling_apply', 'rolling_max', 'rolling_mean']
"""

from dataflows.kernels import elementwise, rolling, smoothing, state, timeseries
from dataflows.kernels.base import KERNELS, Kernel, make_kernel, register

__all__ = ["KERNELS", "Kernel", "elementwise", "make_kernel", "register", "rolling",
           "smoothing", "state", "timeseries"]
