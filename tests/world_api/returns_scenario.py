"""A multi-strategy world on different calendars and intervals, and an independent pandas
reference of the world's realized and pro forma returns.

Strategies: ``wk`` daily on weekdays, ``cr`` daily every day, ``hr`` hourly, ``lag`` daily
every day but reporting three rounds late (its returns land before points the world has).
Each round posts one update per strategy covering the next 7 days; the Sharpe each update
reports is random, so with ``top_k: 2`` the active set changes mid-stream, and
``inverse_vol`` moves the weights.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.strategy_state import RING

HOUR = 3_600 * 10**9
DAY = 24 * HOUR
T0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC, a Monday
POLICY = "top_k: 2\nallocation: {method: inverse_vol}\n"
VOL = {"wk": 0.010, "cr": 0.015, "hr": 0.002, "lag": 0.012}
LAG = 3
WARMUP = 20


def _times(sid: str, k: int) -> list[int]:
    lo, hi = T0 + 7 * k * DAY, T0 + 7 * (k + 1) * DAY
    if sid == "hr":
        return list(range(lo + HOUR, hi + 1, HOUR))
    days = range(lo + DAY, hi + 1, DAY)
    if sid == "wk":  # a weekday's bar closes at the end of the day (midnight after it)
        return [t for t in days if pd.Timestamp(t - 1, unit="ns").day_of_week < 5]
    return list(days)


def updates(rounds: int, seed: int = 0, world: str = "w") -> list[MetricsUpdate]:
    """The updates in the order they are posted."""
    rng = np.random.default_rng(seed)
    made: dict[str, list[MetricsUpdate]] = {sid: [] for sid in VOL}
    # each run had warm-up bars before its first return: an update never carries its whole
    # history, so the world cannot recompute the (random) Sharpe it claims (consistency.py)
    bars = dict.fromkeys(VOL, WARMUP)
    for k in range(rounds):
        for sid, vol in VOL.items():
            ts = _times(sid, k)
            r = rng.normal(0.0004, vol, len(ts))
            bars[sid] += len(ts)
            made[sid].append(MetricsUpdate(
                world=world, strategy_id=sid, run_id="r", seq=k + 1, mode="paper",
                as_of=ts[-1], n_bars=bars[sid],
                metrics={"sharpe": float(rng.uniform(0.0, 2.0))},
                returns=list(zip(ts, r.tolist(), strict=True)),
            ))
    order = []
    for k in range(rounds + LAG):
        order += [made[sid][k] for sid in ("wk", "cr", "hr") if k < rounds]
        if 0 <= k - LAG < rounds:
            order.append(made["lag"][k - LAG])
    return order


class Reference:
    """The world's returns recomputed from the published decisions (the changes the engine
    returns), with pandas, independently of the engine's own bookkeeping."""

    def __init__(self) -> None:
        self.weight: dict[str, float] = {}
        self.last: dict[str, int] = {}
        self.kept: dict[str, list[tuple[int, float]]] = {}
        self.contributions: list[tuple[int, float]] = []

    def before(self, u: MetricsUpdate) -> None:
        """Account for ``u``'s returns with the weight its strategy has now."""
        last = self.last.get(u.strategy_id)
        fresh = [(t, r) for t, r in u.returns if last is None or t > last]
        if fresh:
            self.last[u.strategy_id] = fresh[-1][0]
        self.kept.setdefault(u.strategy_id, []).extend(fresh)
        w = self.weight.get(u.strategy_id, 0.0)
        if w:
            self.contributions += [(t, w * r) for t, r in fresh]

    def after(self, changes: list) -> None:
        """Apply the published decisions."""
        for c in changes:
            self.weight[c.strategy_id] = c.weight if c.active else 0.0

    def realized(self) -> pd.Series:
        """The realized world return per timestamp, sorted."""
        df = pd.DataFrame(self.contributions, columns=["ts", "v"])
        return df.groupby("ts")["v"].sum().sort_index()

    def pro_forma(self) -> pd.Series:
        """Today's weights over each active strategy's last RING kept returns, on the bars
        they all share: the coarsest interval's (median gap) times all its strategies hold,
        a finer strategy's returns compounded into each such bar ``(prev, t]`` it covers
        (its first return at or before ``prev``, its last at or after ``t``)."""
        kept = {}
        for sid, w in sorted(self.weight.items()):
            if w:
                pairs = self.kept[sid][-RING:]
                kept[sid] = (w, pd.Series([r for _, r in pairs], index=[t for t, _ in pairs]))
        if not kept:
            return pd.Series(dtype=float)
        gap = {sid: int(pd.Series(s.index).diff().median()) for sid, (_, s) in kept.items()}
        coarse = max(gap.values())
        grid = sorted(set.intersection(*(set(s.index) for sid, (_, s) in kept.items()
                                         if gap[sid] == coarse)))
        columns = []
        for sid, (w, s) in kept.items():
            if gap[sid] == coarse:
                columns.append(s * w)
                continue
            bars = {t: float((1 + s[(s.index > a) & (s.index <= t)]).prod() - 1)
                    for a, t in itertools.pairwise(grid) if a >= s.index[0] and t <= s.index[-1]}
            columns.append(pd.Series(bars, dtype=float) * w)
        return pd.concat(columns, axis=1, join="inner").sum(axis=1).sort_index()
