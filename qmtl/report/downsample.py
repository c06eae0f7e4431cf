"""Fewer points for a chart, keeping what the eye must see: min/max per bucket.

A chart is at most a couple of thousand pixels wide, so a million-point series is drawn from
a few thousand of its points. :func:`minmax_indices` splits the series into equal buckets of
consecutive points and keeps, from each, the index of its smallest and of its largest value
(plus the first and the last point). Every bucket's range is therefore drawn exactly: the
global minimum and maximum are always kept, so the deepest drawdown and the highest equity
of a run are never smoothed away (LTTB, by contrast, may drop an extreme). Pure numpy.

>>> y = np.array([0.0, 5.0, 1.0, -3.0, 2.0, 2.0, 9.0, 1.0])
>>> minmax_indices(y, 4).tolist()
[0, 1, 3, 6, 7]
"""

from __future__ import annotations

import numpy as np

POINTS = 2_000
"""Points per plotted series by default (1,000 buckets of min and max)."""


def minmax_indices(y: np.ndarray, points: int = POINTS) -> np.ndarray:
    """Sorted indices of the points of ``y`` to draw: for each of ``points // 2`` buckets of
    consecutive points its minimum and maximum, plus the first and last point; all indices
    when ``y`` has no more than ``points`` points. NaNs are never chosen as extremes (a bucket
    of NaNs only keeps its first point).

    >>> minmax_indices(np.arange(5.0), 10).tolist()
    [0, 1, 2, 3, 4]
    >>> y = np.sin(np.linspace(0, 20, 100_000))
    >>> keep = minmax_indices(y, 200)
    >>> len(keep) <= 202, bool(y[keep].min() == y.min()), bool(y[keep].max() == y.max())
    (True, True, True)
    """
    n = len(y)
    if points < 4:
        raise ValueError(f"points must be >= 4, got {points}")
    if n <= points:
        return np.arange(n)
    buckets = points // 2
    width = -(-n // buckets)  # ceil
    buckets = -(-n // width)
    padded = np.empty(buckets * width)
    padded[:n] = y
    padded[n:] = np.nan
    grid = padded.reshape(buckets, width)
    nan = np.isnan(grid)
    all_nan = nan.all(axis=1)
    low = np.where(nan, np.inf, grid).argmin(axis=1)
    high = np.where(nan, -np.inf, grid).argmax(axis=1)
    start = np.arange(buckets) * width
    low = np.where(all_nan, 0, low) + start
    high = np.where(all_nan, 0, high) + start
    keep = np.concatenate([[0, n - 1], low, high])
    return np.unique(np.minimum(keep, n - 1))


def downsample(x: np.ndarray, y: np.ndarray, points: int = POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` at :func:`minmax_indices` of ``y``.

    >>> x, y = downsample(np.arange(10), np.array([0, 1, 2, 3, -9, 5, 6, 7, 8, 9.0]), 4)
    >>> x.tolist(), y.tolist()
    ([0, 3, 4, 5, 9], [0.0, 3.0, -9.0, 5.0, 9.0])
    """
    keep = minmax_indices(y, points)
    return x[keep], y[keep]
