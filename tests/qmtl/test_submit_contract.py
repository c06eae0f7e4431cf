"""The submit contract: what ``auto_returns`` accepts (and refuses, before any connection),
and a backtest whose data fails gives a ``rejected`` result with the hint (the CLI still
exits non-zero)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars, write_demo
from qmtl import Strategy, backtest, submit, validate
from qmtl.cli import app as cli_app
from qmtl.submit import DATA_FAILED, AutoReturnsConfig, AutoReturnsError
from tests.world_api.conftest import serve
from world_api.service.app import create_app

DATA = {"A": generate_bars(400, seed=6)}


class Cross(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return bars.close > bars.close.sma(10)


@pytest.mark.parametrize("bad", [None, "lg", 1, "True", AutoReturnsConfig])
def test_anything_else_is_refused_with_what_is_accepted(bad):
    with pytest.raises(
        AutoReturnsError,
        match="auto_returns must be True, False, 'simple', 'log' or an AutoReturnsConfig; got",
    ):
        validate(Cross, data=DATA, auto_returns=bad)
    # submit refuses before it connects (nothing listens on port 9)
    with pytest.raises(AutoReturnsError):
        submit(Cross, "w", "http://127.0.0.1:9", data=DATA, auto_returns=bad)


def test_true_simple_and_a_config_derive_the_backtests_returns():
    want = backtest(Cross, DATA).metrics["sharpe"]
    for value in (True, "simple", "log", AutoReturnsConfig()):
        res = validate(Cross, data=DATA, auto_returns=value)
        assert res.metrics["sharpe"] == pytest.approx(want, rel=1e-12), value
    assert validate(Cross, data=DATA, auto_returns=False).status == "rejected"


def test_the_configs_execution_rule_is_the_one_the_returns_are_derived_under():
    res = validate(Cross, data=DATA, auto_returns=AutoReturnsConfig(execution="next_open"))
    want = backtest(Cross, DATA, execution="next_open").metrics
    close = backtest(Cross, DATA).metrics
    assert res.metrics["sharpe"] == pytest.approx(want["sharpe"], rel=1e-12)
    assert want["sharpe"] != pytest.approx(close["sharpe"], rel=1e-6)


def test_log_returns_given_are_sent_as_simple_returns():
    logs = np.random.default_rng(1).normal(0.001, 0.01, 300)
    res = validate(Cross, returns=logs, auto_returns="log", policy="min_bars: 10")
    assert res.metrics["total_return"] == pytest.approx(np.exp(logs.sum()) - 1, rel=1e-9)
    simple = validate(Cross, returns=logs, policy="min_bars: 10")
    assert simple.metrics["total_return"] == pytest.approx(np.prod(1 + logs) - 1, rel=1e-9)


def test_config_fields_are_checked():
    with pytest.raises(AutoReturnsError, match="kind must be 'simple' or 'log'"):
        AutoReturnsConfig(kind="pct")
    with pytest.raises(AutoReturnsError, match="execution must be 'close' or 'next_open'"):
        AutoReturnsConfig(execution="open")


def test_a_data_failure_is_a_rejected_result_with_the_hint(tmp_path):
    res = validate(Cross, data=DATA, symbols=["ZZZ"])
    assert res.status == "rejected" and res.n_bars == 0
    assert res.improvement_hints == [f"{DATA_FAILED}unknown symbol 'ZZZ': available: A"]
    with serve(create_app(str(tmp_path / "w.db"), insecure_dev=True)) as url:
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6}).status_code == 201
        got = submit(Cross, "w", url, data=DATA, symbols=["ZZZ"])
        assert got.status == "rejected" and got.improvement_hints[0].startswith(DATA_FAILED)
        catalog = tmp_path / "data"
        write_demo(Catalog(catalog), ["AAPL"], n=50)
        cli = CliRunner().invoke(cli_app, ["submit", "--help"])
        assert cli.exit_code == 0
        strat = tmp_path / "strat.py"
        strat.write_text(
            "from qmtl import Strategy\n\n\nclass S(Strategy):\n    symbols = ['AAPL']\n\n"
            "    def signal(self, bars):\n        return 1.0\n"
        )
        cli = CliRunner().invoke(
            cli_app,
            [
                "submit",
                str(strat),
                "--world",
                "w",
                "--url",
                url,
                "--data",
                str(catalog),
                "--symbols",
                "ZZZ",
            ],
        )
    assert cli.exit_code == 1, cli.output
    assert "the data failed" in cli.output and "ZZZ" in cli.output
