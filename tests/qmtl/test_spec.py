"""Strategies as data: ``Strategy.to_spec()`` and ``qmtl.from_spec`` round-trip to the same
content ids and results; a malformed spec is refused naming the node or the field."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings

import qmtl
from connectors.data.synthetic import generate_bars
from qmtl import Strategy, latch, where
from qmtl.alpha.functions import to_expr
from qmtl.alpha.graph import SpecError
from qmtl.alpha.spec import GraphStrategy, from_spec
from qmtl.core.expr import lit
from qmtl.core.expr_nodes import walk
from qmtl.loader import load_strategy
from tests.qmtl.test_alpha_syntax import trees


class Mixed(Strategy):
    """Uses most node kinds: windows, smoothing, logic, clip, fillna, where, latch."""

    symbols = ["A", "B"]
    interval = "1d"
    cost_bps = 2.5
    max_gross = 0.8
    fast: int = 5

    def signal(self, bars):
        c = bars.close
        r = c.rsi(14)
        up, _mid, low = c.bollinger(20, 2.0)
        held = latch(r < 40, r > 60)
        score = where(c > up, -1.0, where(c < low, 1.0, 0.0)) + held * 0.5
        return (score * c.ema(self.fast).pct_change(3).clip(-1, 1).fillna(0.0)
                + bars.atr(10) / c * 0 + c.wma(4).min(3) * 0 + c.var(6, ddof=1) * 0)


DATA = {s: generate_bars(300, seed=i) for i, s in enumerate("AB")}


def test_a_class_strategy_round_trips_to_the_same_ids_and_results() -> None:
    spec = Mixed(fast=7).to_spec()
    assert spec["qmtl_spec"] == 1 and spec["name"] == "Mixed"
    assert spec["symbols"] == ["A", "B"] and spec["cost_bps"] == 2.5
    assert spec["max_gross"] == 0.8 and spec["interval"] == "1d"
    text = json.dumps(spec, allow_nan=False)  # strict JSON
    back = from_spec(text)
    want = Mixed(fast=7).target()
    assert back.target().id == want.id == spec["output"]
    assert [n.id for n in walk([back.target()])] == [n["id"] for n in spec["nodes"]]
    assert back.to_spec() == spec
    a = qmtl.backtest(Mixed(fast=7), data=DATA)
    b = qmtl.backtest(back, data=DATA)
    assert np.array_equal(a.returns, b.returns) and a.metrics == b.metrics
    assert b.strategy == "Mixed" and b.settings["cost_bps"] == 2.5


def test_a_spec_file_and_a_path(tmp_path) -> None:
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(Mixed().to_spec()))
    assert from_spec(path).target().id == from_spec(str(path)).target().id == \
        Mixed().target().id


def test_floats_json_cannot_hold_are_tagged() -> None:
    s = GraphStrategy(lit(float("nan")) + lit(float("inf")) + lit(-0.0), symbols=["A"])
    spec = s.to_spec()
    values = [n["params"]["value"] for n in spec["nodes"] if n["op"] == "const"]
    assert values == [{"$float": "nan"}, {"$float": "inf"}, -0.0]
    back = from_spec(json.loads(json.dumps(spec, allow_nan=False)))
    assert back.target().id == s.target().id


def test_python_code_has_no_spec() -> None:
    class Code(Strategy):
        def signal(self, bars):
            return bars.close.rolling(3).apply(lambda w: w[-1] - w[0])

    with pytest.raises(SpecError, match=r"\(rolling_apply\) holds Python code"):
        Code().to_spec()


def _spec(nodes, output="w", **extra):
    return {"qmtl_spec": 1, "output": output, "nodes": nodes, **extra}


CLOSE = {"id": "c", "op": "col", "params": {"name": "close"}, "inputs": []}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (_spec([CLOSE, {"id": "w", "op": "rolling_maen", "params": {"n": 3}, "inputs": ["c"]}]),
         "node 'w': unknown operator 'rolling_maen': did you mean 'rolling_mean'?"),
        (_spec([{"id": "w", "op": "add", "params": {}, "inputs": ["c", "x"]}, CLOSE,
                {"id": "x", "op": "neg", "params": {}, "inputs": ["y"]},
                {"id": "y", "op": "abs", "params": {}, "inputs": ["x"]}]),
         "node 'x' is on a cycle: 'x' -> 'y' -> 'x'"),
        (_spec([{"id": "w", "op": "neg", "params": {}, "inputs": ["w"]}]),
         "node 'w' is on a cycle: 'w' -> 'w'"),
        (_spec([CLOSE, {"id": "w", "op": "neg", "params": {}, "inputs": ["k"]}]),
         "node 'w': input 'k' is not a node of the spec"),
        (_spec([CLOSE, {"id": "w", "op": "rolling_mean", "params": {"n": 0}, "inputs": ["c"]}]),
         "node 'w': rolling_mean: n must be a positive integer, got 0"),
        (_spec([CLOSE, {"id": "w", "op": "shift", "params": {"k": 2}, "inputs": ["c"]}]),
         "node 'w': shift: bad parameters ['k']"),
        (_spec([{"id": "w", "op": "col", "params": {"name": "vwap"}, "inputs": []}]),
         "node 'w' (col): params must be"),
        (_spec([{"id": "w", "op": "const", "params": {"value": "1"}, "inputs": []}]),
         "node 'w' (const): params must be"),
        (_spec([CLOSE, CLOSE], output="c"), "node 'c' is defined twice"),
        (_spec([CLOSE], output="z"), "'output' must be the id of a node of the spec"),
        (_spec([{"op": "neg"}]), "node #0 needs an 'id'"),
        (_spec([{"id": "w", "op": "neg", "inputs": "c"}]), "node 'w': 'inputs' must be a list"),
        (_spec([{"id": "w", "op": "neg", "input": []}]), "node 'w' has unknown fields: input"),
        (_spec([{"id": "w", "op": "custom", "params": {}, "inputs": []}]),
         "node 'w': unknown operator 'custom'"),
        (_spec([CLOSE], output="c", qmtl_spec=2), "spec version 2 is not supported"),
        ({"output": "c", "nodes": [CLOSE]}, "not a QMTL spec"),
        (_spec([CLOSE], output="c", symbol=["A"]), "unknown spec fields: symbol"),
        (_spec([CLOSE], output="c", interval="2d"), "spec settings: "),
        (_spec([CLOSE], output="c", symbols="A"), "spec settings: symbols must be a list"),
        (_spec([CLOSE], output="c", warmup=-1), "spec settings: warmup must be"),
    ],
)
def test_a_bad_spec_is_refused_naming_what(spec, message) -> None:
    with pytest.raises(SpecError) as info:
        from_spec(spec)
    assert str(info.value).startswith(message), str(info.value)


def test_a_hand_written_spec_with_short_names_runs() -> None:
    spec = _spec([CLOSE, {"id": "m", "op": "rolling_mean", "params": {"n": 10},
                          "inputs": ["c"]},
                  {"id": "w", "op": "gt", "params": {}, "inputs": ["c", "m"]}],
                 name="above", symbols=["A"], cost_bps=1.0)
    s = from_spec(spec)
    assert s.name == "above"
    assert s.target().id == (qmtl.col("close") > qmtl.col("close").sma(10)).id
    res = qmtl.backtest(s, data=DATA)
    close = DATA["A"]["close"]
    sma = np.convolve(close, np.ones(10) / 10, "valid")
    w = np.r_[np.zeros(9), (close[9:] > sma).astype(float)]
    assert np.allclose(res.bars.column("weight").to_numpy(), w)


@settings(max_examples=100, deadline=None)
@given(tree=trees)
def test_any_alpha_graph_round_trips_through_json(tree) -> None:
    expr = to_expr(tree, "")
    s = GraphStrategy(expr, symbols=["A"])
    spec = json.loads(json.dumps(s.to_spec(), allow_nan=False))
    back = from_spec(spec)
    assert back.target().id == expr.id and back.name == s.name
    assert back.target().lookback == expr.lookback
    assert not any(isinstance(v, float) and math.isnan(v) for v in spec.values())


class Hedged(Strategy):
    """Other symbols' bars (a context symbol), a coarser interval, is_symbol, max_net."""

    symbols = ["A", "B"]
    context = ["C"]
    max_net = 0.3
    interval = "1d"

    def signal(self, bars):
        beta = bars["C"].close.pct_change(1)
        trend = bars.close > bars.close.sma(10)
        return qmtl.where(bars.is_symbol("A"), trend * 0.8, -0.5 * (beta > 0))


@pytest.mark.parametrize("module", ["pairs_trade", "daily_filter", "sma_cross", "rsi_reversion"])
def test_the_examples_round_trip(module: str) -> None:
    cls = load_strategy(str(Path(__file__).resolve().parents[2] / "examples" / f"{module}.py"))
    spec = json.loads(json.dumps(cls().to_spec(), allow_nan=False))
    back = from_spec(spec)
    assert back.target().id == cls().target().id and back.name == cls.__name__
    assert back.to_spec() == spec


def test_context_max_net_and_other_symbols_round_trip() -> None:
    data = {s: generate_bars(200, seed=i) for i, s in enumerate("ABC")}
    spec = json.loads(json.dumps(Hedged().to_spec(), allow_nan=False))
    assert spec["context"] == ["C"] and spec["max_net"] == 0.3
    assert {"symbol": "C", "name": "close"}.items() <= next(
        n["params"] for n in spec["nodes"] if n["op"] == "col" and "symbol" in n["params"]
    ).items()
    back = from_spec(spec)
    a, b = qmtl.backtest(Hedged, data=data), qmtl.backtest(back, data=data)
    assert np.array_equal(a.returns, b.returns) and a.metrics == b.metrics
    assert b.settings["max_net"] == 0.3 and b.settings["context"] == ["C"]
    assert Mixed().to_spec()["max_net"] is None


def test_a_too_deep_spec_is_an_error_not_a_crash() -> None:
    nodes = [CLOSE] + [{"id": f"n{i}", "op": "abs", "params": {},
                        "inputs": [f"n{i - 1}" if i else "c"]} for i in range(5000)]
    with pytest.raises(SpecError, match="too deep"):
        from_spec(_spec(nodes, output="n4999"))


def test_the_spec_on_the_docs_page_is_its_alpha() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "alphas.md").read_text()
    block = page.split("```json\n", 1)[1].split("```", 1)[0]
    spec = json.loads(block)
    s = from_spec(spec)
    want = qmtl.alpha(spec["alpha"], symbols=spec["symbols"], cost_bps=spec["cost_bps"])
    assert s.target().id == want.target().id and s.name == "reversal"
