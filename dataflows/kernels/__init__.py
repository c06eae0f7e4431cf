"""Batch kernels of every operator; importing this package registers the built-in ones.

- :mod:`~dataflows.kernels.base`: the :class:`Kernel` contract and the registry;
- :mod:`~dataflows.kernels.elementwise`: arithmetic, functions, comparisons, logic;
- :mod:`~dataflows.kernels.rolling`: shift and window statistics;
- :mod:`~dataflows.kernels.smoothing`: exponential smoothing (EMA, Wilder);
- :mod:`~dataflows.kernels.state`: kernels with a state of their own (latch);
- :mod:`~dataflows.kernels.timeseries`: the alpha language's window rank, covariance and
  correlation;
- :mod:`~dataflows.kernels.paper`: ``ts_argmax``, ``ts_argmin`` and ``product`` of the
  "101 Formulaic Alphas" notation.

>>> sorted(k for k in KERNELS if k.startswith("rolling_"))[:3]
['rolling_apply', 'rolling_max', 'rolling_mean']
"""

from dataflows.kernels import elementwise, paper, rolling, smoothing, state, timeseries
from dataflows.kernels.base import KERNELS, Kernel, make_kernel, register

__all__ = ["KERNELS", "Kernel", "elementwise", "make_kernel", "paper", "register", "rolling",
           "smoothing", "state", "timeseries"]
