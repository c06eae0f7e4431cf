"""Cross-sectional operators: each kernel against a pandas reference on panels with missing
bars and NaNs, whole strategies against a pandas reference of the same math, and batch
invariance over multi-symbol streams with unequal calendars, down to one bar per batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.data.synthetic import generate_bars
from dataflows.compiler import StrategySpec, run_dataflow
from dataflows.kernels.cross_section import (
    cs_bottom,
    cs_demean,
    cs_neutralize,
    cs_rank,
    cs_scale,
    cs_top,
    cs_zscore,
)
from qmtl import Strategy, backtest, cs
from qmtl.core.expr import col

TOL = 1e-12


def panel(seed: int, rows: int = 40, cols: int = 9, nan: float = 0.25,
          ties: bool = True) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols))
    if ties:  # rounded values make ties common
        x = np.round(x, 1)
    x[rng.random((rows, cols)) < nan] = np.nan
    x[0, :] = np.nan          # a time with nobody
    x[1, 1:] = np.nan         # a time with one symbol
    return pd.DataFrame(x, columns=[f"S{j:02d}" for j in range(cols)])


def rowwise(df: pd.DataFrame, flag: pd.Series) -> pd.DataFrame:
    """A row flag spread over the frame's columns."""
    return pd.DataFrame(np.broadcast_to(flag.to_numpy()[:, None], df.shape), index=df.index,
                        columns=df.columns)


def ref_rank(df: pd.DataFrame) -> pd.DataFrame:
    r = df.rank(axis=1, method="average")
    n = df.notna().sum(axis=1)
    out = (r - 1).div(n - 1, axis=0)
    return out.mask(df.notna() & rowwise(df, n == 1), 0.5)


def ref_zscore(df: pd.DataFrame) -> pd.DataFrame:
    std = df.std(axis=1, ddof=0)
    out = df.sub(df.mean(axis=1), axis=0).div(std, axis=0)
    return out.mask(rowwise(df, std == 0))


def ref_scale(df: pd.DataFrame, gross: float) -> pd.DataFrame:
    total = df.abs().sum(axis=1)
    out = df.div(total, axis=0) * gross
    return out.mask(df.notna() & rowwise(df, total == 0), 0.0)


def ref_pick(df: pd.DataFrame, k: int, highest: bool) -> pd.DataFrame:
    out = df.copy() * np.nan
    for t, row in df.iterrows():
        have = [(-v if highest else v, s) for s, v in row.items() if np.isfinite(v)]
        chosen = {s for _, s in sorted(have)[:k]}
        for s, v in row.items():
            if np.isfinite(v):
                out.loc[t, s] = 1.0 if s in chosen else 0.0
    return out


def close_to(got: np.ndarray, want: pd.DataFrame) -> None:
    want_a = want.to_numpy(dtype=float)
    assert np.array_equal(np.isnan(got), np.isnan(want_a))
    np.testing.assert_allclose(got, want_a, rtol=0, atol=TOL)


@pytest.mark.parametrize("seed", range(6))
def test_kernels_match_pandas(seed):
    df = panel(seed)
    x = df.to_numpy()
    close_to(cs_rank(x), ref_rank(df))
    close_to(cs_demean(x), df.sub(df.mean(axis=1), axis=0))
    close_to(cs_zscore(x), ref_zscore(df))
    close_to(cs_scale(x, 2.5), ref_scale(df, 2.5))
    close_to(cs_top(x, 3), ref_pick(df, 3, True))
    close_to(cs_bottom(x, 2), ref_pick(df, 2, False))
    groups = {s: "ab"[j % 2] for j, s in enumerate(df.columns)}
    codes = [j % 2 for j in range(len(df.columns))]
    want = df.T.groupby(groups).transform(lambda g: g - g.mean()).T
    close_to(cs_neutralize(x, codes), want)


def test_rank_edge_cases():
    assert cs_rank(np.array([[7.0]])).tolist() == [[0.5]]
    assert cs_rank(np.array([[1.0, 1.0, 1.0]])).tolist() == [[0.5, 0.5, 0.5]]
    assert cs_scale(np.array([[0.0, 0.0, np.nan]])).tolist()[0][:2] == [0.0, 0.0]
    assert cs_top(np.array([[1.0, np.nan]]), 5).tolist()[0][0] == 1.0


# -- whole strategies over unequal calendars -----------------------------------------------

SYMS = ["AAA", "BBB", "CCC", "DDD", "EEE"]


def universe(seed: int, n: int = 120, drop: float = 0.2) -> dict[str, dict[str, np.ndarray]]:
    """Symbols on one daily grid, each missing a random fifth of its bars."""
    rng = np.random.default_rng(seed)
    out = {}
    for i, s in enumerate(SYMS):
        bars = generate_bars(n, seed=seed * 10 + i)
        keep = rng.random(n) >= drop
        keep[:3] = True
        out[s] = {k: v[keep] for k, v in bars.items()}
    return out


def weights_of(res) -> pd.DataFrame:
    rows = res.bars.to_pandas()
    return rows.pivot(index="ts", columns="symbol", values="weight")


def pandas_momentum(data, n: int = 5) -> pd.DataFrame:
    closes = pd.DataFrame({s: pd.Series(b["close"], index=b["ts"]) for s, b in data.items()})
    mom = pd.DataFrame({s: closes[s].dropna().pct_change(n) for s in closes})
    w = ref_scale(ref_rank(mom).sub(ref_rank(mom).mean(axis=1), axis=0), 1.0)
    return w.where(closes.notna()).fillna(0.0).where(closes.notna())


class Momentum(Strategy):
    symbols = SYMS
    max_gross = 2.0  # cs.scale already gives gross 1: no cap on top

    def signal(self, bars):
        return cs.scale(cs.demean(cs.rank(bars.close.pct_change(5))))


@pytest.mark.parametrize("seed", [1, 2])
def test_momentum_book_matches_pandas(seed):
    data = universe(seed)
    res = backtest(Momentum, data)
    got = weights_of(res)
    want = pandas_momentum(data)
    want = want.loc[got.index, got.columns]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=0, atol=TOL)
    # market neutral: the weights of each time add up to 0
    assert np.abs(got.fillna(0).sum(axis=1)).max() < 1e-12
    assert res.metrics["n_bars"] > 100


def test_time_series_ops_after_cs_run_per_symbol():
    data = universe(3)

    class Smoothed(Strategy):
        symbols = SYMS

        def signal(self, bars):
            return cs.rank(bars.close.pct_change(3)).ema(4) - 0.5

    got = weights_of(backtest(Smoothed, data, batch_size=[1, 5, 17]))
    closes = pd.DataFrame({s: pd.Series(b["close"], index=b["ts"]) for s, b in data.items()})
    rank = ref_rank(pd.DataFrame({s: closes[s].dropna().pct_change(3) for s in closes}))
    want = {}
    for s in SYMS:  # an SMA-seeded EMA over each symbol's own bars (TA-Lib EMA, as qmtl)
        x = rank[s].dropna()
        ema = np.full(len(x), np.nan)
        ema[3] = x.iloc[:4].mean()
        for i in range(4, len(x)):
            ema[i] = 0.4 * x.iloc[i] + 0.6 * ema[i - 1]
        want[s] = pd.Series(ema - 0.5, index=x.index)
    present = closes.loc[got.index].notna()
    # NaN (warm-up) is weight 0; a symbol without a bar holds its last weight
    raw = pd.DataFrame(want).reindex(got.index).fillna(0.0).where(present).ffill().fillna(0.0)
    gross = raw.abs().sum(axis=1)
    capped = raw.div(np.maximum(gross, 1.0), axis=0)  # max_gross 1.0 caps the raw weights
    np.testing.assert_allclose(got.to_numpy(), capped.where(present)[got.columns].to_numpy(),
                               rtol=0, atol=1e-12)


def test_neutralize_from_csv(tmp_path):
    path = tmp_path / "sectors.csv"
    path.write_text("symbol,sector\nAAA,x\nBBB,x\nCCC,y\nDDD,y\nEEE,y\n")
    groups = cs.groups_from_csv(path)

    class Sector(Strategy):
        symbols = SYMS
        max_gross = 10.0

        def signal(self, bars):
            return cs.neutralize(bars.close.pct_change(1), groups)

    data = universe(4, drop=0.0)
    got = weights_of(backtest(Sector, data))
    closes = pd.DataFrame({s: pd.Series(b["close"], index=b["ts"]) for s, b in data.items()})
    x = closes.pct_change(1)
    want = x.T.groupby(groups).transform(lambda g: g - g.mean()).T.fillna(0.0)
    np.testing.assert_allclose(got.to_numpy(), want.loc[got.index, got.columns].to_numpy(),
                               rtol=0, atol=TOL)


def test_neutralize_names_a_symbol_without_group():
    class Partial(Strategy):
        symbols = SYMS

        def signal(self, bars):
            return cs.neutralize(bars.close, {"AAA": "x"})

    with pytest.raises(ValueError, match="symbol 'BBB' has no group"):
        backtest(Partial, universe(5))


# -- batch invariance: any interleaving and batching, down to one bar ----------------------

def interleaved(data, sizes: list[int], order_seed: int):
    """Each symbol cut into batches of ``sizes`` (cycled), the symbols' batches interleaved
    in a random order that keeps each symbol's own batches in time order."""
    rng = np.random.default_rng(order_seed)
    queues = {}
    for i, (s, b) in enumerate(sorted(data.items())):
        n, at, parts, k = len(b["ts"]), 0, [], i
        while at < n:
            step = sizes[k % len(sizes)]
            parts.append((s, {c: v[at:at + step] for c, v in b.items()}))
            at += step
            k += 1
        queues[s] = parts
    items = []
    while any(queues.values()):
        live = [s for s in sorted(queues) if queues[s]]
        items.append(queues[live[int(rng.integers(len(live)))]].pop(0))
    return items


WEIGHT = (
    cs.scale(cs.demean(cs.rank(col("close").pct_change(4))))
    + 0.1 * cs.top(col("volume"), 2) - 0.1 * cs.bottom(col("close").diff(2), 2)
    + 0.05 * cs.zscore(col("close").sma(3)).ema(3).fillna(0.0)
)


def run_items(items, weight=WEIGHT, max_net=float("inf")):
    spec = StrategySpec("x", SYMS, weight, 5.0, 1.0, 252.0, max_net=max_net)
    outs = run_dataflow([spec], lambda: iter(items), metrics_every=7)
    rows = [o.batch for o in outs if o.batch is not None]
    cat = {k: np.concatenate([b.symbol_rows[k] for b in rows]) for k in rows[0].symbol_rows}
    return np.concatenate([b.returns for b in rows]), cat, outs[-1].metrics


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    order_seed=st.integers(0, 2**16),
    data_seed=st.integers(0, 50),
)
def test_batch_invariance_unequal_calendars(sizes, order_seed, data_seed):
    data = universe(data_seed, n=60, drop=0.3)
    whole = [(s, b) for s, b in sorted(data.items())]
    want_r, want_rows, want_m = run_items(whole)
    got_r, got_rows, got_m = run_items(interleaved(data, sizes, order_seed))
    assert np.array_equal(got_r, want_r)
    for k in want_rows:
        assert np.array_equal(got_rows[k], want_rows[k]), k
    for k, v in want_m.items():  # metrics accumulate per snapshot: equal to rounding
        assert np.isclose(got_m[k], v, rtol=1e-12, atol=1e-12, equal_nan=True), k


def test_one_bar_per_batch_equals_whole():
    data = universe(9, n=80, drop=0.25)
    want = run_items([(s, b) for s, b in sorted(data.items())])
    got = run_items(interleaved(data, [1], 3))
    assert np.array_equal(got[0], want[0])
    assert np.array_equal(got[1]["weight"], want[1]["weight"])
