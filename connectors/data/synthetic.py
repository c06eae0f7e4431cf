"""Deterministic synthetic bars, so the demo and the tests need no download.

Prices follow a geometric random walk whose drift switches between regimes (so trend and
mean-reversion strategies both have something to find); OHLC are consistent and volume is
positive. The same seed gives the same bars on every machine.

>>> b = generate_bars(3, seed=1)
>>> sorted(b), len(b["ts"])
(['close', 'high', 'low', 'open', 'ts', 'volume'], 3)
>>> bool((b["low"] <= b["close"]).all() and (b["close"] <= b["high"]).all())
True
"""

from __future__ import annotations

import zlib

import numpy as np

from connectors.data.catalog import Catalog
from qmtl.core.intervals import interval_ns, periods_per_year
from qmtl.core.times import parse_time

DEMO_SYMBOLS: list[str] = ["AAPL", "MSFT", "NVDA", "SPY"]
"""Symbols ``qmtl data demo`` writes."""


def generate_bars(
    n: int,
    *,
    interval: str = "1d",
    start: str = "2015-01-02",
    seed: int = 0,
    s0: float = 100.0,
    drift: float = 0.05,
    vol: float = 0.2,
) -> dict[str, np.ndarray]:
    """``n`` bars of one synthetic symbol, stamped at their close, ``interval`` apart.

    ``drift`` and ``vol`` are annual; regimes of a few hundred bars add a drift of
    +-2 ``vol`` on top.

    >>> generate_bars(2, seed=3)["ts"].tolist() == generate_bars(2, seed=3)["ts"].tolist()
    True
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    ppy = periods_per_year(interval)
    step = interval_ns(interval)
    ts = parse_time(start) + step * np.arange(n, dtype=np.int64)
    dt = 1.0 / ppy
    regime_len = max(int(rng.integers(150, 400)), 1)
    regimes = rng.choice([-2.0, -0.5, 0.5, 2.0], size=n // regime_len + 1)
    mu = drift + vol * np.repeat(regimes, regime_len)[:n]
    log_ret = (mu - 0.5 * vol * vol) * dt + vol * np.sqrt(dt) * rng.standard_normal(n)
    close = s0 * np.exp(np.cumsum(log_ret))
    open_ = np.r_[s0, close[:-1]] * np.exp(0.1 * vol * np.sqrt(dt) * rng.standard_normal(n))
    span = vol * np.sqrt(dt) * np.abs(rng.standard_normal((2, n)))
    high = np.maximum(open_, close) * np.exp(span[0])
    low = np.minimum(open_, close) * np.exp(-span[1])
    volume = np.round(1e6 * np.exp(0.3 * rng.standard_normal(n)))
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


def symbol_seed(seed: int, symbol: str) -> int:
    """A stable per-symbol seed (the same on every machine and Python run).

    >>> symbol_seed(7, "AAPL") == symbol_seed(7, "AAPL") != symbol_seed(7, "MSFT")
    True
    """
    return (seed * 1_000_003 + zlib.crc32(symbol.encode())) % (2**32)


def write_demo(
    catalog: Catalog,
    symbols: list[str] | None = None,
    interval: str = "1d",
    n: int = 2520,
    seed: int = 7,
) -> list[str]:
    """Write ``n`` synthetic bars per symbol into ``catalog``; return the symbols written.

    >>> import tempfile
    >>> from connectors.data.catalog import Catalog
    >>> cat = Catalog(tempfile.mkdtemp())
    >>> write_demo(cat, ["X"], n=10)
    ['X']
    >>> cat.coverage("X", "1d")[2]
    10
    """
    names = list(symbols or DEMO_SYMBOLS)
    for s in names:
        catalog.write(s, interval, generate_bars(n, interval=interval, seed=symbol_seed(seed, s)))
    return names
