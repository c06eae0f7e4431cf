"""``qmtl.alpha``: weights equal an independent pandas computation of the alpha and its
neutralization; an alpha, its spec and its text agree; many alphas in one flow compute their
shared nodes once and each gets the results it gets alone."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import dataflows.panel
import qmtl
from connectors.data.synthetic import generate_bars
from qmtl.alpha.api import backtest_alphas, dedup
from qmtl.alpha.syntax import AlphaSyntaxError
from qmtl.strategy import StrategyError

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
DATA = {s: generate_bars(250, seed=10 + i) for i, s in enumerate(SYMBOLS)}
SECTORS = {"AAA": "x", "BBB": "x", "CCC": "y", "DDD": "y", "EEE": "y"}


def _panel(column: str) -> pd.DataFrame:
    return pd.DataFrame({s: DATA[s][column] for s in SYMBOLS})


def _weights(res: qmtl.BacktestResult) -> pd.DataFrame:
    frame = res.bars.to_pandas()
    return frame.pivot(index="ts", columns="symbol", values="weight")[SYMBOLS].reset_index(
        drop=True)


def _rank(x: pd.DataFrame) -> pd.DataFrame:
    n = x.notna().sum(axis=1)
    r = x.rank(axis=1).sub(1).div((n - 1).where(n > 1), axis=0)
    return r.where(~(n == 1), 0.5).where(x.notna())  # one value: 0.5


def _scale(x: pd.DataFrame) -> pd.DataFrame:
    return x.div(x.abs().sum(axis=1), axis=0)


def test_default_weights_are_scale_of_demean_of_the_alpha() -> None:
    s = qmtl.alpha("rank(-ts_delta(close, 5))", symbols=SYMBOLS)
    close = _panel("close")
    alpha = _rank(-(close - close.shift(5)))
    want = _scale(alpha.sub(alpha.mean(axis=1), axis=0)).fillna(0.0)
    got = _weights(qmtl.backtest(s, data=DATA))
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-12)
    assert np.allclose(got.sum(axis=1)[5:], 0.0) and np.allclose(got.abs().sum(axis=1)[5:], 1)


def test_neutralize_none_scales_the_alpha_itself() -> None:
    s = qmtl.alpha("ts_mean(returns, 10) * vwap", symbols=SYMBOLS, neutralize=None)
    close = _panel("close")
    vwap = (_panel("high") + _panel("low") + close) / 3
    alpha = (close / close.shift(1) - 1).rolling(10).mean() * vwap
    want = _scale(alpha).fillna(0.0)
    got = _weights(qmtl.backtest(s, data=DATA))
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-12)


def test_groups_neutralize_within_each_group() -> None:
    s = qmtl.alpha("ts_zscore(close, 20)", symbols=SYMBOLS, groups=SECTORS)
    close = _panel("close")
    alpha = (close - close.rolling(20).mean()) / close.rolling(20).std()
    by = pd.Series(SECTORS)
    demeaned = alpha - alpha.T.groupby(by).transform("mean").T
    want = _scale(demeaned).fillna(0.0)
    got = _weights(qmtl.backtest(s, data=DATA))
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-12)
    assert np.allclose(got[["AAA", "BBB"]].sum(axis=1), 0.0)
    explicit = qmtl.alpha("group_neutralize(ts_zscore(close, 20), group)", symbols=SYMBOLS,
                          groups=SECTORS, neutralize=None)
    got2 = _weights(qmtl.backtest(explicit, data=DATA))
    np.testing.assert_allclose(got2.to_numpy(), want.to_numpy(), atol=1e-12)


def test_the_text_and_its_spec_give_the_same_ids_and_results() -> None:
    text = "zscore(ts_corr(close, volume, 10)) - rank(decay_linear(returns, 5))"
    s = qmtl.alpha(text, symbols=SYMBOLS, cost_bps=3.0, name="corr")
    spec = s.to_spec()
    assert spec["alpha"] == text and spec["name"] == "corr" and spec["cost_bps"] == 3.0
    back = qmtl.from_spec(json.dumps(spec, allow_nan=False))
    assert back.target().id == s.target().id == spec["output"]
    assert back.alpha == text
    a, b = qmtl.backtest(s, data=DATA), qmtl.backtest(back, data=DATA)
    assert np.array_equal(a.returns, b.returns) and a.metrics == b.metrics
    assert qmtl.alpha(text, symbols=SYMBOLS).target().id == s.target().id
    assert qmtl.alpha(text, symbols=SYMBOLS).name == qmtl.alpha(f" ( {text} ) ",
                                                                symbols=SYMBOLS).name


def test_many_alphas_share_nodes_and_get_their_own_results(monkeypatch) -> None:
    texts = ["rank(close) - rank(open)", "rank(close) * ts_rank(volume, 10)",
             "-rank(close)", "ts_mean(rank(close), 5)"]
    book = qmtl.alphas(texts, symbols=SYMBOLS)
    evaluated, summed = dedup(book)
    assert evaluated < summed

    calls: Counter[str] = Counter()
    original = dataflows.panel.panel_call

    def counting(op, x, params, symbols):
        calls[op] += 1
        return original(op, x, params, symbols)

    monkeypatch.setattr(dataflows.panel, "panel_call", counting)
    together = backtest_alphas(book, DATA, batch_size=100)
    shared_ranks = calls["cs_rank"]
    calls.clear()
    alone = [qmtl.backtest(s, data=DATA, batch_size=100) for s in book]
    # the flow ranks across symbols twice per panel step (rank(close) for all four alphas,
    # rank(open)); run alone, the alphas rank 2 + 1 + 1 + 1 = 5 times per step
    assert shared_ranks > 0 and calls["cs_rank"] * 2 == 5 * shared_ranks
    for r, s, own in zip(together, book, alone, strict=True):
        assert r.strategy == s.name
        assert np.array_equal(r.returns, own.returns), s.alpha
        assert r.metrics == own.metrics


def test_alpha_errors() -> None:
    with pytest.raises(AlphaSyntaxError, match="alpha #2: unknown operator 'rnak'"):
        qmtl.alphas(["rank(close)", "rnak(close)"], symbols=SYMBOLS)
    with pytest.raises(StrategyError, match=r"alpha #2 .* gives the same weights as alpha #1"):
        qmtl.alphas(["rank(close)", "(rank(close))"], symbols=SYMBOLS)
    with pytest.raises(StrategyError, match="groups has no group for EEE"):
        qmtl.alpha("close", symbols=SYMBOLS, groups={k: v for k, v in SECTORS.items()
                                                      if k != "EEE"})
    with pytest.raises(StrategyError, match="neutralize must be"):
        qmtl.alpha("close", symbols=SYMBOLS, neutralize="sector")
    with pytest.raises(StrategyError, match="not one string"):
        qmtl.alpha("close", symbols="AAA")
    with pytest.raises(StrategyError, match="interval"):
        qmtl.alpha("close", symbols=SYMBOLS, interval="2d")
