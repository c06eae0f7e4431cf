"""Page-size advice for the arrays a replay allocates.

numpy advises the kernel to back every array of 4 MB or more with transparent huge pages.
Where the kernel compacts memory to find huge pages when they are first touched (``defrag``
set to ``madvise``, a common default), a replay that allocates large fresh arrays (a cold
cache entry of a long history, the result's per-symbol rows) spends more time in the kernel
than in its own work: a cold 10 x 1M replay took 1.2-1.6 s in a fresh process with the
advice and 0.8-0.9 s without, and a replay from memory was no slower without it
(``bench/data.py``). Replay arrays are written once and read in order, where huge pages gain
little, so :func:`small_pages` turns the advice off for the replay's duration.

The setting is numpy's own (``NUMPY_MADVISE_HUGEPAGE``); when a user has set that variable,
their choice stands and nothing is switched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """Within the block, numpy does not advise huge pages for new arrays (process-wide: the
    advice is a hint to the kernel, so other threads lose nothing but that hint); the previous
    setting is restored after.

    >>> with small_pages():
    ...     a = np.zeros(1 << 20)
    >>> float(a.sum())
    0.0
    """
    setter = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if setter is None or "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    before = setter(False)
    try:
        yield
    finally:
        setter(before)
