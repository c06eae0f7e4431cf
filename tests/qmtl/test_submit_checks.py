"""submit adds the pre-trade check metrics (issue 28 §5): max_symbol_weight from the book's
weights and half_universe_ratio from a backtest on the sorted-every-other half; references
are pandas computations over the backtests' own per-symbol rows."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import backtest, validate
from qmtl.loader import load_strategy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MomentumBook = load_strategy(f"{EXAMPLES / 'momentum_book.py'}:MomentumBook")
BOOK = ["AAPL", "MSFT", "NVDA", "SPY"]
DATA = {s: generate_bars(400, seed=i) for i, s in enumerate(BOOK)}


def pd_sharpe(r) -> float:
    r = pd.Series(r)
    return r.mean() / r.std() * math.sqrt(252)


def test_validate_adds_check_metrics_and_gates_them():
    full = backtest(MomentumBook, DATA)
    half = backtest(MomentumBook, DATA, symbols=["AAPL", "NVDA"])  # sorted, every other
    w = full.bars.to_pandas().pivot(index="ts", columns="symbol", values="weight").abs()
    gross = w.sum(axis=1)
    ref_w = (w.max(axis=1)[gross > 0] / gross[gross > 0]).max()
    ref_ratio = pd_sharpe(half.returns) / pd_sharpe(full.returns)
    policy = {"gates": {"max_symbol_weight": f"<= {ref_w - 0.01}",
                        "half_universe_ratio": f">= {ref_ratio + 0.1}"}}
    res = validate(MomentumBook, policy, data=DATA)
    assert res.metrics["max_symbol_weight"] == pytest.approx(ref_w, rel=1e-12)
    assert res.metrics["half_universe_ratio"] == pytest.approx(ref_ratio, rel=1e-9)
    assert res.status == "rejected"
    assert f"max_symbol_weight {ref_w:.4g} > gate {ref_w - 0.01:.4g}" in res.improvement_hints
    assert (f"half_universe_ratio {ref_ratio:.4g} < gate {ref_ratio + 0.1:.4g}"
            in res.improvement_hints)
    ok = validate(MomentumBook, {"gates": {"max_symbol_weight": f"<= {ref_w + 0.01}",
                                           "half_universe_ratio": f">= {ref_ratio - 0.1}"}},
                  data=DATA)
    assert ok.status == "active", ok.improvement_hints


def test_no_half_run_unless_gated():
    res = validate(MomentumBook, {"gates": {"max_symbol_weight": "<= 1"}}, data=DATA)
    assert "half_universe_ratio" not in res.metrics
    assert res.status == "active"


def test_submit_to_a_served_world_sends_the_check_metrics(tmp_path):
    import httpx

    from qmtl import submit
    from tests.world_api.conftest import serve
    from world_api.service.app import create_app
    from world_api.service.auth import create_token
    from world_api.service.store import open_store

    full = backtest(MomentumBook, DATA)
    half = backtest(MomentumBook, DATA, symbols=["AAPL", "NVDA"])
    ref_ratio = pd_sharpe(half.returns) / pd_sharpe(full.returns)
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    dev = create_token(store, "developer", "quant")
    with serve(create_app(store)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w"}, headers=auth).status_code == 201
        gate = f">= {ref_ratio + 0.1}"
        r = httpx.put(f"{url}/worlds/w/policy", headers=auth,
                      json={"gates": {"half_universe_ratio": gate}})
        assert r.status_code < 300, r.text
        res = submit(MomentumBook, "w", url, dev, data=DATA)
    store.close()
    assert res.metrics["half_universe_ratio"] == pytest.approx(ref_ratio, rel=1e-9)
    assert res.status == "rejected"
    assert res.improvement_hints[0] == (
        f"half_universe_ratio {ref_ratio:.4g} < gate {ref_ratio + 0.1:.4g}")
