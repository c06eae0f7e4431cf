"""Symbolic-regression output becomes alphas: sympy expressions and PySR's hall of fame,
with a variable mapping, give the same content id as the same alpha written by hand; and
``qmtl submit --pysr`` submits the best equations to a world."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
import sympy
from typer.testing import CliRunner

import qmtl
from connectors.data.catalog import Catalog
from qmtl.alpha.sr import pysr_equations, sr_text
from qmtl.alpha.syntax import AlphaSyntaxError
from qmtl.cli import app
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY"]
VARS = {"x0": "close", "x1": "volume", "x2": "returns"}
x0, x1, x2 = sympy.symbols("x0 x1 x2")

# sympy expression -> the alpha a person writes for it
SYMPY_CASES = [
    (sympy.sin(x0) * x1 - 2.5, "volume * sin(close) - 2.5"),
    (sympy.cos(x2) + sympy.exp(x0) / x1, "cos(returns) + exp(close) / volume"),
    (-x0**2 + sympy.Abs(x2), "-(close ^ 2) + abs(returns)"),
    (sympy.sqrt(x1) * sympy.log(x0), "sqrt(volume) * log(close)"),
    (x0**3 - x2 / 2, "close ^ 3 - returns / 2"),
    (sympy.pi * x2, "3.141592653589793 * returns"),
]


@pytest.mark.parametrize(("expr", "hand"), SYMPY_CASES)
def test_a_sympy_expression_is_the_alpha_written_by_hand(expr: sympy.Expr, hand: str) -> None:
    got = qmtl.alpha.from_sympy(expr, variables=VARS, symbols=SYMBOLS)
    want = qmtl.alpha(hand, SYMBOLS)
    assert got.weight.id == want.weight.id, (str(expr), got.alpha)
    assert got.name == want.name


def test_pysr_operators_are_the_languages_nodes() -> None:
    pairs = {
        "square(x0)": "close ^ 2",
        "cube(x1)": "power(volume, 3)",
        "neg(x2)": "-returns",
        "(x0 ^ 2.0) * -0.5": "power(close, 2) * -0.5",
        "((x0 * 1.5e-3) + sin(x1))": "close * 0.0015 + sin(volume)",
    }
    for eq, hand in pairs.items():
        got = qmtl.alpha(sr_text(eq, VARS), SYMBOLS).weight.id
        assert got == qmtl.alpha(hand, SYMBOLS).weight.id, eq


def test_a_variable_may_be_any_alpha_text() -> None:
    text = sr_text("x0 / x1", {"x0": "ts_mean(close, 5)", "x1": "close + 1"})
    assert text == "ts_mean(close, 5) / (close + 1)"


def hall_of_fame(tmp_path: Path) -> Path:
    path = tmp_path / "hall_of_fame.csv"
    path.write_text(
        "Complexity,Loss,Equation\n"
        "1,0.0100,\"x2\"\n"
        "4,0.0040,\"(x2 * -1.2)\"\n"
        "6,0.0031,\"sin(x2 * 3.0) - square(x2)\"\n"
        "8,0.0031,\"neg(x2) + (x0 * 0.0)\"\n"
    )
    return path


def test_pysr_hall_of_fame_lowest_loss_first(tmp_path: Path) -> None:
    path = hall_of_fame(tmp_path)
    eqs = pysr_equations(path, VARS)
    assert [e.complexity for e in eqs] == [6, 8, 4, 1]  # equal loss: the simpler first
    got = qmtl.alpha.from_pysr(str(path), variables=VARS, symbols=SYMBOLS, top=2)
    assert [s.alpha for s in got] == ["sin(returns * 3) - square(returns)",
                                      "neg(returns) + close * 0"]
    assert got[0].weight.id == qmtl.alpha("sin(returns * 3) - returns ^ 2", SYMBOLS).weight.id


@pytest.mark.parametrize(("body", "message"), [
    ("Loss,Equation\n1,x0\n", "missing complexity"),
    ("Complexity,Loss,Equation\n2,abc,x0\n", ":2: expected a complexity"),
    ("Complexity,Loss,Equation\n2,0.1,x0 + x9\n", ":2: variable 'x9' has no mapping"),
    ("Complexity,Loss,Equation\n2,0.1,tan(x0)\n", ":2: unknown operator 'tan'"),
])
def test_bad_halls_of_fame_say_where(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises((ValueError, AlphaSyntaxError)) as info:
        qmtl.alpha.from_pysr(str(path), VARS, SYMBOLS)
    assert message in str(info.value)


def test_submit_pysr_submits_the_top_equations(tmp_path: Path) -> None:
    runner = CliRunner()
    demo = tmp_path / "data"
    assert runner.invoke(app, ["data", "demo", "--data", str(demo), "--bars", "300"]
                         ).exit_code == 0
    path = hall_of_fame(tmp_path)
    store = open_store(str(tmp_path / "world.db"))
    op, dev = create_token(store, "operator", "ops"), create_token(store, "developer", "q")
    with serve(create_app(store)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6},
                          headers=auth).status_code == 201
        got = runner.invoke(app, ["submit", "--pysr", str(path), "--variables",
                                  "x0=close,x1=volume,x2=returns", "--top", "2",
                                  "--symbols", ",".join(SYMBOLS), "--world", "w", "--url",
                                  url, "--token", dev, "--data", str(demo)])
        assert got.exit_code == 0, got.output
        for s in qmtl.alpha.from_pysr(str(path), VARS, SYMBOLS, top=2):
            want = qmtl.backtest(s, data=Catalog(demo))
            view = httpx.get(f"{url}/worlds/w/strategies/{s.name}",
                             headers={"Authorization": f"Bearer {dev}"}).json()
            assert view["n_bars"] == len(want.returns)
            assert np.isclose(view["metrics"]["sharpe"], want.metrics["sharpe"], rtol=1e-12)
        bad = runner.invoke(app, ["submit", "--pysr", str(path), "--symbols", "AAPL",
                                  "--world", "w"])
        assert bad.exit_code != 0 and "--pysr needs --variables" in bad.output
    store.close()
