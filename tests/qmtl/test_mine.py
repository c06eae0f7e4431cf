"""``qmtl mine``: the search is reproducible for a seed, evaluates equal alphas once, its
candidates' Sharpe ratios are those of their own backtests, the deflated Sharpe counts every
distinct candidate, the correlation filter skips copies of a world's active strategies, and
``--submit-top`` submits to the world."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

import qmtl
from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.alpha.mine import correlation, mine
from qmtl.cli import app
from qmtl.sweep import stats as overfit
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]


@pytest.fixture(scope="module")
def data() -> dict:
    return {s: generate_bars(240, seed=80 + i) for i, s in enumerate(SYMBOLS)}


@pytest.fixture(scope="module")
def result(data: dict):
    return mine(data, SYMBOLS, population=12, generations=3, seed=5)


def test_the_same_seed_gives_the_same_search(data: dict, result) -> None:
    again = mine(data, SYMBOLS, population=12, generations=3, seed=5)
    assert [c.text for c in again.candidates] == [c.text for c in result.candidates]
    other = mine(data, SYMBOLS, population=12, generations=3, seed=6)
    assert [c.text for c in other.candidates] != [c.text for c in result.candidates]


def test_equal_alphas_are_evaluated_once(result) -> None:
    assert result.tried == 36
    assert sum(g.new for g in result.generations) == len(result.candidates)
    assert len(result.candidates) < result.tried  # elites and repeats are not re-run
    assert all(g.nodes <= g.nodes_alone for g in result.generations)


def test_fitness_is_the_training_sharpe_of_the_alphas_own_backtest(data: dict, result) -> None:
    for c in result.candidates[:3]:
        bt = qmtl.backtest(qmtl.alpha(c.text, SYMBOLS), data=data)
        tr = bt.ts <= result.train_end
        want = float(overfit.sharpe(bt.returns[tr])) * math.sqrt(252)
        assert c.train_sharpe == pytest.approx(want, rel=1e-9)
        test = float(overfit.sharpe(bt.returns[~tr])) * math.sqrt(252)
        assert c.test_sharpe == pytest.approx(test, rel=1e-9)


def test_the_deflated_sharpe_counts_every_distinct_candidate(result) -> None:
    srs = np.array([float(overfit.sharpe(c.train)) for c in result.candidates])
    want = overfit.deflated_sharpe(result.candidates[0].train, srs)
    # every distinct candidate with a defined Sharpe (a flat alpha has none) is a trial
    assert want.n_trials == int(np.isfinite(srs).sum()) > 0.8 * len(result.candidates)
    assert result.deflated == pytest.approx(want.dsr)


def test_a_copy_of_an_active_strategy_is_filtered(data: dict, result) -> None:
    best = result.candidates[0]
    active = {"live": (best.train_ts, best.train * 2.0)}
    again = mine(data, SYMBOLS, population=12, generations=3, seed=5, active=active)
    assert again.candidates[0].max_corr == pytest.approx(1.0)
    assert best.text not in [c.text for c in again.best(5)]
    picks = result.best(5, max_corr=0.7)
    for i, a in enumerate(picks):
        for b in picks[i + 1:]:
            assert abs(correlation(a.train_ts, a.train, b.train_ts, b.train)) <= 0.7


def test_cli_mines_writes_and_submits_the_top(tmp_path: Path, data: dict,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "data"
    cat = Catalog(root)
    for s, b in data.items():
        cat.write(s, "1d", b)
    monkeypatch.setenv("QMTL_DATA", str(root))
    for var in ("QMTL_ORIGIN", "QMTL_QUESTDB"):
        monkeypatch.delenv(var, raising=False)
    store = open_store(str(tmp_path / "world.db"))
    op, dev = create_token(store, "operator", "ops"), create_token(store, "developer", "q")
    runner = CliRunner()
    with serve(create_app(store)) as url:
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6},
                          headers={"Authorization": f"Bearer {op}"}).status_code == 201
        got = runner.invoke(app, ["mine", "--symbols", ",".join(SYMBOLS), "--population",
                                  "12", "--generations", "3", "--seed", "5", "--submit-top",
                                  "2", "--world", "w", "--url", url, "--token", dev,
                                  "--out", str(tmp_path / "m")])
        assert got.exit_code == 0, got.output
        doc = json.loads((tmp_path / "m" / "mine.json").read_text())
        assert doc["tried"] == 36 and doc["distinct"] < 36
        table = httpx.get(f"{url}/worlds/w/activation",
                          headers={"Authorization": f"Bearer {dev}"}).json()
        names = {r["strategy_id"] for r in table["strategies"]}
        assert {b["name"] for b in doc["best"][:2]} <= names
    bad = runner.invoke(app, ["mine", "--symbols", "AAA", "--submit-top", "1"])
    assert bad.exit_code == 1 and "--submit-top needs --world" in bad.output
    store.close()
