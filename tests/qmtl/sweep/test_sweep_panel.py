"""Cross-sectional strategies (``cs.*``, another symbol's bars, a coarser interval, an
alpha) sweep as they run: every variant of ``qmtl.sweep`` and every strategy of
``sweep_many`` equals its own ``qmtl.backtest``, bit for bit, with plain strategies mixed
in and across workers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import alpha, backtest, sweep, sweep_many
from qmtl.loader import load_strategy

EXAMPLES = Path(__file__).parents[3] / "examples"
HERE = Path(__file__).parent
MomentumBook = load_strategy(f"{EXAMPLES / 'momentum_book.py'}:MomentumBook")
PairsTrade = load_strategy(f"{EXAMPLES / 'pairs_trade.py'}:PairsTrade")
DailyFilter = load_strategy(f"{EXAMPLES / 'daily_filter.py'}:DailyFilter")
SmaCross = load_strategy(f"{HERE / 'strategies.py'}:SmaCross")
BOOK = ["AAPL", "MSFT", "NVDA", "SPY"]


@pytest.fixture(scope="module")
def daily() -> dict:
    return {s: generate_bars(400, seed=i) for i, s in enumerate(BOOK)}


def same(run, alone) -> None:
    assert np.array_equal(run.ts, alone.ts)
    assert np.array_equal(run.returns, alone.returns)
    assert run.metrics.keys() == alone.metrics.keys()
    for k, w in alone.metrics.items():
        g = run.metrics[k]
        assert (math.isnan(g) and math.isnan(w)) or abs(g - w) <= 1e-12, (k, g, w)


@pytest.mark.parametrize("options", [{}, {"workers": 2, "batch_size": 37}])
def test_momentum_book_variants_equal_their_runs(daily: dict, options: dict) -> None:
    res = sweep(MomentumBook, {"lookback": "5,10,20"}, daily, **options)
    assert res.table.num_rows == 3
    for i, params in enumerate(res.params):
        alone = backtest(MomentumBook, daily, **params)
        assert alone.returns.std() > 0  # a real book, not flat
        same(res.runs[i], alone)
    assert res.stats.nodes_evaluated < res.stats.nodes_per_variant  # the close is shared


def test_pairs_trade_variants_equal_their_runs(daily: dict) -> None:
    res = sweep(PairsTrade, {"lookback": "20,40", "entry": "1.0,1.5"}, daily)
    for i, params in enumerate(res.params):
        same(res.runs[i], backtest(PairsTrade, daily, **params))


def test_daily_filter_on_minute_bars_equals_its_runs() -> None:
    minutes = {"SPY": generate_bars(8 * 24 * 60, interval="1m", seed=5)}
    res = sweep(DailyFilter, {"fast": "30,60", "days": "2,3"}, minutes, batch_size=1000)
    for i, params in enumerate(res.params):
        alone = backtest(DailyFilter, minutes, **params)
        assert np.any(alone.returns != 0)
        same(res.runs[i], alone)


def test_sweep_many_mixes_alphas_books_and_plain_strategies(daily: dict) -> None:
    book = alpha("rank(-ts_delta(close, 5))", BOOK)
    other = alpha("zscore(ts_mean(volume, 5)) * rank(returns)", BOOK, neutralize=None)
    plain = SmaCross(fast=3, slow=8)
    plain.symbols = ["AAPL", "MSFT"]  # type: ignore[misc]
    strategies = [book, MomentumBook(lookback=10), plain, other, PairsTrade()]
    res = sweep_many(strategies, daily, workers=2)
    assert res.table.num_rows == 5
    for i, s in enumerate(strategies):
        same(res.runs[i], backtest(s, daily))


def test_a_sweep_with_start_warms_a_coarser_series_up_as_a_run_does() -> None:
    minutes = {"SPY": generate_bars(4 * 24 * 60, interval="1m", seed=6)}
    start = int(minutes["SPY"]["ts"][2 * 24 * 60])
    res = sweep(DailyFilter, {"days": "2"}, minutes, start=start)
    same(res.runs[0], backtest(DailyFilter, minutes, start=start, days=2))


def test_the_cli_sweeps_the_momentum_book_as_qmtl_run_runs_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, daily: dict) -> None:
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from connectors.data.catalog import Catalog
    from qmtl.cli import app

    cat = Catalog(tmp_path / "data")
    for sym, b in daily.items():
        cat.write(sym, "1d", b)
    monkeypatch.setenv("QMTL_DATA", str(tmp_path / "data"))
    for var in ("QMTL_ORIGIN", "QMTL_QUESTDB"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", str(EXAMPLES / "momentum_book.py"), "-p",
                                   "lookback=5,10", "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pq.read_table(out / "results.parquet").to_pylist()
    for row in table:
        alone = backtest(MomentumBook, tmp_path / "data", lookback=row["lookback"])
        assert row["sharpe"] == pytest.approx(alone.metrics["sharpe"], abs=1e-12)
