"""The book's marked-to-market return per bar, as the world takes it
(``POST /worlds/{world}/book/returns``): once the world's book reports, the world's realized
return is this series (``world_api.domain.world_returns``).

A bar's return is the account's equity (cash plus positions at the bar's closes, after the
fills and fees the bar brought) over its equity at the previous bar, less one; the first bar
is measured from the equity the book started with. A bar is closed once a later bar's time
arrives (several strategies' targets for one bar may come in several passes), and its point
waits in :attr:`MarkedReturns.pending` until the world has it.

>>> m = MarkedReturns(start=1000.0)
>>> m.observe(1, 1000.0); m.observe(1, 990.0); m.observe(2, 1039.5); m.observe(3, 1039.5)
>>> [(t, round(r, 6)) for t, r in m.pending]
[(1, -0.01), (2, 0.05)]
>>> m.sent(1); m.pending
[(2, 0.05...)]
"""

from __future__ import annotations

import math


class MarkedReturns:
    """The book's per-bar returns waiting for the world (see the module docstring)."""

    def __init__(self, start: float | None = None) -> None:
        self.prev = start if start is not None and math.isfinite(start) else None
        self.ts: int | None = None
        self.equity = math.nan
        self.pending: list[tuple[int, float]] = []

    def observe(self, ts: int, equity: float) -> None:
        """The equity after the book handled bar ``ts`` (a time before the current bar's,
        or an equity that is not finite, is ignored)."""
        if ts <= 0 or not math.isfinite(equity) or (self.ts is not None and ts < self.ts):
            return
        if self.ts is not None and ts > self.ts:
            if self.prev is not None and self.prev > 0:
                self.pending.append((self.ts, self.equity / self.prev - 1.0))
            self.prev = self.equity
        self.ts, self.equity = ts, equity

    def sent(self, n: int) -> None:
        """The world has the first ``n`` pending points."""
        del self.pending[:n]
