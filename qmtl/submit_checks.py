"""The pre-trade check metrics ``submit`` adds to its last update (issue 28 §5, definitions
in :mod:`world_api.domain.alpha_checks`): ``max_symbol_weight`` from the backtest's
per-symbol weights, and ``half_universe_ratio``, Sharpe(half) / Sharpe(full), from a second
backtest on the documented half of the universe, run only when the world's policy gates it
(it doubles the cost of a submit) and the universe has at least two symbols.

>>> import pyarrow as pa
>>> bars = pa.table({"ts": [1, 1, 2, 2], "symbol": ["A", "B"] * 2,
...                  "weight": [0.5, -0.5, 0.8, 0.2]})
>>> book_concentration(bars)
0.8
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa

from world_api.domain.alpha_checks import half_universe, half_universe_ratio, max_symbol_weight
from world_api.domain.policy import parse_policy


def book_concentration(bars: pa.Table) -> float:
    """``max_symbol_weight`` of a backtest's per-symbol rows (``ts``, ``symbol``,
    ``weight``); NaN when the table has no weights.

    >>> book_concentration(pa.table({"ts": [1]}))
    nan
    """
    if bars.num_rows == 0 or "weight" not in bars.column_names:
        return math.nan
    ts = bars.column("ts").to_numpy()
    sym = np.asarray(bars.column("symbol").to_pylist(), dtype=object)
    w = bars.column("weight").to_numpy(zero_copy_only=False).astype(np.float64)
    t_u, t_i = np.unique(ts, return_inverse=True)
    s_u, s_i = np.unique(sym.astype(str), return_inverse=True)
    grid = np.zeros((len(t_u), len(s_u)))
    grid[t_i, s_i] = w
    return max_symbol_weight(grid)


def wants_half(client: Any) -> bool:
    """Whether the world's policy gates ``half_universe_ratio`` (a local world's engine, or
    a remote world's policy text).

    >>> from qmtl.submit_worlds import LocalWorld
    >>> wants_half(LocalWorld("gates: {half_universe_ratio: '>= 0.5'}"))
    True
    """
    engine = getattr(client, "engine", None)
    if engine is not None:
        return "half_universe_ratio" in engine.policy.gates
    text = getattr(client, "policy_text", None)
    return callable(text) and "half_universe_ratio" in parse_policy(text() or "{}").gates


def check_metrics(ran: Any, half_run: Any | None, periods_per_year: float) -> dict[str, float]:
    """The check metrics of a full run ``ran`` and, when given, its half-universe run
    (both :class:`qmtl.result.BacktestResult`); a NaN one is left out.

    >>> check_metrics(type("R", (), {"bars": pa.table({"ts": [1]})})(), None, 252)
    {}
    """
    out = {"max_symbol_weight": book_concentration(ran.bars)}
    if half_run is not None:
        out["half_universe_ratio"] = half_universe_ratio(
            np.asarray(half_run.returns), np.asarray(ran.returns), periods_per_year)
    return {k: v for k, v in out.items() if math.isfinite(v)}


__all__ = ["book_concentration", "check_metrics", "half_universe", "wants_half"]
