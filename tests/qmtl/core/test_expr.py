"""Expression graph: content ids, sharing, lookback inference, strategy parameters."""

from __future__ import annotations

import pytest

from dataflows.graph import Program
from qmtl import Strategy, StrategyError, col, ind, where
from qmtl.core.expr_nodes import walk


def test_content_id_is_stable_and_sensitive():
    c = col("close")
    assert c.sma(10).id == col("close").sma(10).id
    assert c.sma(10).id != c.sma(11).id
    assert c.sma(10).id != col("open").sma(10).id
    assert (c + 1).id != (1 + c).id  # operand order matters for sub/div; ids follow inputs
    assert c.var(5, ddof=1).id != c.var(5).id
    # ids do not depend on Python object identity or creation order
    ids = [e.id for e in (c.ema(3), c.shift(2), c.rsi(14))]
    assert ids == [e.id for e in (col("close").ema(3), col("close").shift(2), col("close").rsi(14))]


def test_shared_subexpressions_are_one_node():
    c = col("close")
    a = c.sma(20) > c.sma(50)
    b = (c - c.sma(20)) / c.std(20)
    nodes = list(walk([a, b]))
    assert len({n.id for n in nodes}) == len(nodes)
    assert sum(n.op == "rolling_mean" and n.params["n"] == 20 for n in nodes) == 1


def test_program_across_strategies_dedupes():
    c = col("close")
    prog = Program({"s1": c.sma(10) > c.sma(50), "s2": c.sma(10) > c.sma(30)})
    means = [n for n in prog.nodes if n.op == "rolling_mean"]
    assert sorted(n.params["n"] for n in means) == [10, 30, 50]


def test_lookback_is_inferred_along_paths():
    c = col("close")
    assert c.sma(50).lookback == 49
    assert c.pct_change(5).sma(20).lookback == 5 + 19
    assert (c.sma(10) > c.sma(50)).lookback == 49
    assert c.macd(12, 26, 9).signal.lookback == 25 + 8


def test_bool_context_gives_a_helpful_error():
    with pytest.raises(TypeError, match=r"use `&`, `\|`, `~`"):
        bool(col("close") > 1)


def test_where_and_logic_build_nodes():
    c = col("close")
    e = where((c > 1) & ~(c < 0) | (c == 3), c, -c)
    assert e.op == "where"
    assert [i.op for i in e.inputs] == ["or", "col", "neg"]


def test_bad_windows_are_refused():
    with pytest.raises(ValueError, match="sma: window must be a positive integer"):
        col("close").sma(0)
    with pytest.raises(ValueError, match="macd: fast"):
        col("close").macd(26, 12)


class Demo(Strategy):
    symbols = ["A"]
    fast: int = 10
    slow: int = 50
    scale: float = 1.0
    long_only: bool = True

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def test_strategy_parameters_and_overrides():
    assert Demo.parameters() == {"fast": 10, "slow": 50, "scale": 1.0, "long_only": True}
    s = Demo(fast="5", scale="0.5", long_only="false")
    assert (s.fast, s.scale, s.long_only) == (5, 0.5, False)
    assert s.target().lookback == 49


def test_strategy_bad_parameters():
    with pytest.raises(StrategyError, match="has no parameter 'fats'; parameters: fast, slow"):
        Demo(fats=1)
    with pytest.raises(StrategyError, match="expects int, got 'x'"):
        Demo(fast="x")


def test_strategy_bad_class_attributes():
    class BadInterval(Strategy):
        interval = "7m"

    with pytest.raises(StrategyError, match="interval: unknown interval '7m'"):
        BadInterval()

    class BadReturn(Strategy):
        def signal(self, bars):
            return "long"

    with pytest.raises(StrategyError, match="must return an expression or a number, got str"):
        BadReturn().target()


def test_indicator_functions_and_methods_are_the_same_nodes():
    c, h, lo = col("close"), col("high"), col("low")
    assert ind.rsi(c, 14).id == c.rsi(14).id
    assert [e.id for e in ind.bollinger(c, 20, 2.0)] == [e.id for e in c.bollinger(20, 2)]
    assert [e.id for e in ind.macd(c, 5, 9, 3)] == [e.id for e in c.macd(5, 9, 3)]
    # the composition itself, node for node (ids as before indicators moved into Expr)
    change = c - c.shift(1)
    avg_gain, avg_loss = change.maximum(0.0).wilder(14), (-change).maximum(0.0).wilder(14)
    total = avg_gain + avg_loss
    assert c.rsi(14).id == where(total == 0.0, 0.0 * avg_gain, 100.0 * avg_gain / total).id
    assert ind.atr(h, lo, c, 14).lookback == 14
    with pytest.raises(ValueError, match="fast"):
        ind.macd(c, 26, 12)
    with pytest.raises(TypeError, match="expected an expression"):
        ind.rsi("close")  # type: ignore[arg-type]
