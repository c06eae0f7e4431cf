"""Dataset fingerprints: what exactly a run saw.

Per symbol: first and last bar time, row count and a SHA-256 of the bars' bytes, row by row
(``ts`` as int64, then ``open high low close volume`` as float64), so it does not depend on
how the bars were batched. The dataset fingerprint hashes the interval and every symbol's
summary; the same bars give the same fingerprint and any changed bar changes it.

>>> import numpy as np
>>> bars = {"ts": np.array([1, 2]), "open": np.ones(2), "high": np.ones(2),
...         "low": np.ones(2), "close": np.array([1.0, 2.0]), "volume": np.ones(2)}
>>> whole, parts = BarHasher(), BarHasher()
>>> _ = whole.update(bars)
>>> for lo, hi in ((0, 1), (1, 2)):
...     _ = parts.update({k: v[lo:hi] for k, v in bars.items()})
>>> whole.summary() == parts.summary()
True
>>> len(dataset_fingerprint({"A": whole.summary()}, "1d"))
64
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from qmtl.contracts import BAR_COLUMNS

_ROW = np.dtype([("ts", "<i8")] + [(c, "<f8") for c in BAR_COLUMNS if c != "ts"])


class BarHasher:
    """Streaming summary of one symbol's bars (see the module docstring)."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.first: int | None = None
        self.last: int | None = None
        self.rows = 0

    def update(self, batch: dict[str, np.ndarray]) -> BarHasher:
        """Add the next batch (in time order)."""
        n = len(batch["ts"])
        if n == 0:
            return self
        rows = np.empty(n, dtype=_ROW)
        for c in BAR_COLUMNS:
            rows[c] = batch[c]
        self._hash.update(rows.view(np.uint8))  # the bytes themselves: no copy
        if self.first is None:
            self.first = int(batch["ts"][0])
        self.last = int(batch["ts"][-1])
        self.rows += n
        return self

    def summary(self) -> dict[str, Any]:
        """``{"first", "last", "rows", "sha256"}``."""
        return {
            "first": self.first,
            "last": self.last,
            "rows": self.rows,
            "sha256": self._hash.hexdigest(),
        }


def dataset_fingerprint(symbols: dict[str, dict[str, Any]], interval: str) -> str:
    """One SHA-256 for the whole dataset: the interval and each symbol's summary."""
    doc = json.dumps({"interval": interval, "symbols": symbols}, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()
