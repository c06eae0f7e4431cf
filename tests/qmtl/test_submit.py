"""validate() and submit(): the returns precedence and the hints (against a policy evaluated
locally), the policy argument, and the default strategy id against a real world service."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from dataflows.metrics import MetricSet
from qmtl import Strategy, backtest, submit, validate
from qmtl.submit import PolicyFileError
from qmtl.submit_worlds import SubmitError
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

DATA = {"A": generate_bars(600, seed=4)}
RNG = np.random.default_rng(3)


class Long(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return 1.0


class OwnReturns(Strategy):
    def returns(self):
        return np.full(400, 0.001)


class OwnEquity(Strategy):
    def equity(self):
        return np.array([100.0, 110.0, 99.0])


class Nothing(Strategy):
    pass


def test_derived_returns_match_backtest_metrics():
    res = validate(Long, data=DATA)
    want = backtest(Long, data=DATA).metrics
    assert res.status == "active" and res.weight == 1.0 and res.rank == 1
    assert res.metrics["sharpe"] == pytest.approx(want["sharpe"], rel=1e-12)
    assert res.n_bars == 600 and res.dry_run


def test_explicit_returns_win_over_everything():
    given = RNG.normal(0.002, 0.01, 300)
    res = validate(OwnReturns, returns=given, policy="min_bars: 100")
    want = MetricSet(252).update(given).get()
    assert res.metrics["total_return"] == pytest.approx(want["total_return"], rel=1e-12)
    assert res.n_bars == 300


def test_strategy_supplied_returns_and_equity():
    assert validate(OwnReturns).n_bars == 400
    res = validate(OwnEquity)
    assert res.metrics["total_return"] == pytest.approx(99.0 / 100.0 - 1.0)


def test_no_source_of_returns_is_rejected_with_a_reason():
    res = validate(Nothing)
    assert res.status == "rejected"
    assert res.improvement_hints == [
        "no returns: the strategy defines no signal(), returns(), equity() or pnl()"]
    res = validate(Long, data=DATA, auto_returns=False)
    assert res.status == "rejected" and "no returns" in res.improvement_hints[0]


def test_gate_hint_carries_numbers():
    res = validate(Long, data=DATA, policy={"gates": {"sharpe": ">= 50"}})
    assert res.status == "rejected"
    assert res.improvement_hints[0].startswith("sharpe ")
    assert res.improvement_hints[0].endswith("< gate 50")


class Cross(Strategy):
    symbols = ["A"]
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


@pytest.mark.parametrize("as_path", [str, Path])
def test_policy_is_read_from_a_file_path(tmp_path, as_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_bars: 5000\n")
    res = validate(Long, policy=as_path(policy), data=DATA)
    assert res.status == "rejected"
    assert res.improvement_hints == ["only 600 bars < min_bars 5000: extend --start"]


def test_a_missing_policy_file_says_so(tmp_path):
    with pytest.raises(PolicyFileError, match=r"policy file not found: .*nope\.yaml"):
        validate(Long, policy=str(tmp_path / "nope.yaml"), data=DATA)
    with pytest.raises(PolicyFileError):
        validate(Long, policy=tmp_path / "nope", data=DATA)


def test_policy_text_and_mappings_still_work():
    assert validate(Long, policy="min_bars: 5000", data=DATA).status == "rejected"
    assert validate(Long, policy={"min_bars": 5000}, data=DATA).status == "rejected"


def test_the_default_id_tells_parameter_sets_apart():
    assert validate(Cross, data=DATA).strategy_id == "Cross"
    assert validate(Cross, data=DATA, fast=10).strategy_id == "Cross"  # the default value
    assert validate(Cross, data=DATA, slow="20", fast=5).strategy_id == "Cross-fast=5,slow=20"
    assert validate(Cross, data=DATA, fast=5, strategy_id="mine").strategy_id == "mine"


def test_resubmitting_other_parameters_adds_an_entry(tmp_path):
    """Submitting the same class with other parameters replaced the earlier entry in the
    world; each parameter set now has its own id, and the same set keeps its id."""
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    dev = create_token(store, "developer", "quant")
    with serve(create_app(store)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6},
                          headers=auth).status_code == 201
        first = submit(Cross, "w", url, dev, data=DATA)
        second = submit(Cross, "w", url, dev, data=DATA, fast=5, slow=20)
        again = submit(Cross, "w", url, dev, data=DATA, fast=5, slow=20)
        snap = httpx.get(f"{url}/worlds/w/activation", headers=auth).json()
    store.close()
    assert (first.strategy_id, second.strategy_id) == ("Cross", "Cross-fast=5,slow=20")
    assert again.strategy_id == second.strategy_id
    assert sorted(r["strategy_id"] for r in snap["strategies"]) == [
        "Cross", "Cross-fast=5,slow=20"]
    assert first.metrics["sharpe"] != second.metrics["sharpe"]


def test_a_world_with_a_market_refuses_a_submission_outside_its_universe(tmp_path):
    """``submit`` says which symbols it trades; a world whose market does not hold them
    refuses it with a hint that names them, and takes one within it (issue 26 §1)."""
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    dev = create_token(store, "developer", "quant")
    with serve(create_app(store, tick=0)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w"}, headers=auth).status_code == 201
        r = httpx.put(f"{url}/worlds/w/market", content="universe: {symbols: [B, C]}",
                      headers=auth)
        assert r.status_code == 200, r.text
        with pytest.raises(SubmitError, match=r"outside world 'w''s universe: A \("):
            submit(Long, "w", url, dev, data=DATA)
        assert httpx.get(f"{url}/worlds/w/strategies", headers=auth).json() == []
        inside = submit(Long, "w", url, dev, data={"B": DATA["A"]}, symbols=["B"])
    store.close()
    assert inside.status == "active"
