"""The cross-symbol and multi-interval examples run from the command line and match a pandas
reference of the same rules computed here from the same catalog."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from qmtl.cli import app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
runner = CliRunner()


def demo(folder: Path, *args: str) -> Catalog:
    got = runner.invoke(app, ["data", "demo", "--data", str(folder), *args])
    assert got.exit_code == 0, got.output
    return Catalog(folder)


def run(example: str, data: Path, out: Path) -> tuple[pd.DataFrame, dict]:
    got = runner.invoke(app, ["run", "--mode", "backtest", str(EXAMPLES / example),
                              "--data", str(data), "--out", str(out)])
    assert got.exit_code == 0, got.output
    rows = pq.read_table(out / "bars.parquet").to_pandas()
    weights = rows.pivot(index="ts", columns="symbol", values="weight")
    return weights, json.loads((out / "metrics.json").read_text())


def latch(enter: np.ndarray, leave: np.ndarray) -> np.ndarray:
    out, state = np.zeros(len(enter)), 0.0
    for i in range(len(enter)):
        if enter[i]:
            state = 1.0
        elif leave[i]:
            state = 0.0
        out[i] = state
    return out


def test_pairs_trade_is_long_one_leg_short_the_other(tmp_path):
    cat = demo(tmp_path / "d", "--bars", "500", "--symbols", "AAPL,MSFT")
    weights, doc = run("pairs_trade.py", tmp_path / "d", tmp_path / "out")
    a, m = cat.read("AAPL", "1d"), cat.read("MSFT", "1d")
    assert np.array_equal(a["ts"], m["ts"])
    spread = pd.Series(np.log(a["close"]) - np.log(m["close"]))
    mean = spread.rolling(40).mean()
    std = spread.rolling(40).std(ddof=0)
    z = ((spread - mean) / std).to_numpy()
    with np.errstate(invalid="ignore"):
        pos = 0.5 * (latch(z < -1.5, z > -0.25) - latch(z > 1.5, z < 0.25))
    np.testing.assert_allclose(weights["AAPL"].to_numpy(), pos, rtol=0, atol=1e-12)
    np.testing.assert_allclose(weights["MSFT"].to_numpy(), -pos, rtol=0, atol=1e-12)
    assert (pos > 0).any() and (pos < 0).any()  # both directions traded
    # the returns formula with shorts: w(t-1) * r(t) per leg, 1bp on turnover both sides
    r = {s: pd.Series(cat.read(s, "1d")["close"]).pct_change().fillna(0).to_numpy()
         for s in ("AAPL", "MSFT")}
    w = {"AAPL": pos, "MSFT": -pos}
    turn = sum(np.abs(np.diff(np.r_[0.0, w[s]])) for s in w)
    ret = sum(np.r_[0.0, w[s][:-1]] * r[s] for s in w) - 1e-4 * np.r_[0.0, turn[:-1]]
    table = pq.read_table(tmp_path / "out" / "bars.parquet").to_pandas()
    equity = table.groupby("ts")["equity"].first().to_numpy()
    np.testing.assert_allclose(equity, np.cumprod(1 + ret), rtol=1e-10)
    assert doc["metrics"]["n_bars"] == 500


def daily_filter_reference(bars: dict) -> np.ndarray:
    fine = pd.Series(bars["close"], index=pd.to_datetime(bars["ts"], utc=True))
    # daily bars stamped at their close (midnight UTC), covering (T - 1d, T]
    daily = fine.resample("1D", closed="right", label="right").last().dropna()
    up = (daily > daily.rolling(3).mean()).astype(float)
    up = up[daily.rolling(3).mean().notna()]
    seen = pd.merge_asof(pd.DataFrame({"t": fine.index}), pd.DataFrame({"t": up.index,
                         "up": up.to_numpy()}), on="t", direction="backward",
                         allow_exact_matches=True)["up"].to_numpy()
    fast = (fine > fine.rolling(60).mean()).astype(float).to_numpy()
    return np.where(seen == 1.0, fast, 0.0)


def test_daily_filter_sees_each_day_only_after_its_close(tmp_path):
    cat = demo(tmp_path / "m", "--interval", "1m", "--bars", "8000", "--symbols", "SPY")
    weights, doc = run("daily_filter.py", tmp_path / "m", tmp_path / "out")
    want = daily_filter_reference(cat.read("SPY", "1m"))
    got = weights["SPY"].to_numpy()
    np.testing.assert_array_equal(got, want)
    assert got.sum() > 100 and (got == 0).sum() > 100
    assert doc["settings"]["warmup"] >= 3 * 1440  # three days of minutes before trading


def momentum_reference(cat: Catalog, symbols: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """cs.scale(cs.demean(cs.rank(close.pct_change(5)))) in pandas, and the book's returns."""
    close = pd.DataFrame({s: cat.read(s, "1d")["close"] for s in symbols},
                         index=cat.read(symbols[0], "1d")["ts"])
    mom = close.pct_change(5)
    n = mom.notna().sum(axis=1)
    rank = (mom.rank(axis=1, method="average") - 1).div(n - 1, axis=0)
    rank = rank.where(n > 1, 0.5).where(mom.notna())
    demeaned = rank.sub(rank.mean(axis=1), axis=0)
    gross = demeaned.abs().sum(axis=1)
    weights = demeaned.div(gross.where(gross > 0), axis=0).fillna(0.0)
    r = close.pct_change().fillna(0.0)
    turn = weights.diff().fillna(weights).abs().sum(axis=1).to_numpy()
    ret = (weights.shift(1).fillna(0.0) * r).sum(axis=1).to_numpy() - 1e-4 * np.r_[0.0, turn[:-1]]
    return weights, ret


def test_momentum_book_from_the_cli_and_the_api_equals_pandas(tmp_path):
    from qmtl import backtest
    from qmtl.loader import load_strategy

    cat = demo(tmp_path / "d", "--bars", "400")  # the demo's symbols: AAPL, MSFT, NVDA, SPY
    book = load_strategy(str(EXAMPLES / "momentum_book.py"))
    symbols = list(book.symbols)
    assert set(symbols) == set(cat.symbols("1d"))
    want, ret = momentum_reference(cat, symbols)
    assert (want > 0).any().all() and (want < 0).any().all()  # every symbol long and short
    cli, doc = run("momentum_book.py", tmp_path / "d", tmp_path / "out")
    api = backtest(book, tmp_path / "d")
    api_w = api.bars.to_pandas().pivot(index="ts", columns="symbol", values="weight")
    for got in (cli, api_w):
        np.testing.assert_allclose(got[symbols].to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(got.sum(axis=1), 0.0, atol=1e-12)  # market neutral
    np.testing.assert_allclose(api.returns, ret, rtol=0, atol=1e-12)
    table = pq.read_table(tmp_path / "out" / "bars.parquet").to_pandas()
    equity = table.groupby("ts")["equity"].first().to_numpy()
    np.testing.assert_allclose(equity, np.cumprod(1 + ret), rtol=1e-10)
    assert doc["metrics"]["n_bars"] == 400


@pytest.mark.parametrize("name", ["pairs_trade.py", "daily_filter.py", "momentum_book.py"])
def test_examples_define_one_strategy(name):
    text = (EXAMPLES / name).read_text()
    assert text.count("(Strategy)") == 1
