"""A mistake in the user's strategy code is reported at the user's file and line, with
Python's hint, whether it happens while ``signal`` builds the graph or inside an Operator or
an ``apply`` function during the run; errors that are not the strategy's pass unchanged."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Operator, Strategy, StrategyCodeError, StrategyError, backtest
from qmtl.loader import load_strategy
from qmtl.usercode import exception_line, is_user_file

DATA = {"A": generate_bars(120, seed=3)}
HERE = __file__


def line_of(func, text: str) -> int:
    """The line number of the first line of ``func``'s source that contains ``text``."""
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, line in enumerate(lines) if text in line)


class Typo(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return bars.clsoe.sma(5) > 0


class TypoOp(Operator):
    def update(self, x):
        return x.cumsun()


class WithTypoOp(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return TypoOp()(bars.close) > 0


class Long(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return 1.0


def frist_of(window):
    return window.frist


class WithBadApply(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return bars.close.rolling(5).apply(frist_of) > 0


def test_a_typo_in_signal_names_the_line_and_pythons_hint():
    with pytest.raises(StrategyCodeError) as info:
        backtest(Typo, data=DATA)
    message = str(info.value)
    assert message.startswith(
        f"Typo.signal failed at {HERE}:{line_of(Typo.signal, 'clsoe')} (in signal): "
    )
    assert message.endswith(
        "AttributeError: 'Bars' object has no attribute 'clsoe'. Did you mean: 'close'?"
    )
    assert isinstance(info.value.__cause__, AttributeError)
    assert isinstance(info.value, StrategyError)  # `except StrategyError` still catches it


def test_a_typo_in_an_operator_names_its_line_during_the_run():
    with pytest.raises(StrategyCodeError) as info:
        backtest(WithTypoOp, data=DATA)
    where = f"{HERE}:{line_of(TypoOp.update, 'cumsun')} (in update)"
    assert str(info.value) == (
        f"WithTypoOp failed during the run at {where}: AttributeError: 'numpy.ndarray' object "
        "has no attribute 'cumsun'. Did you mean: 'cumsum'?"
    )


def test_an_apply_function_is_user_code_too():
    with pytest.raises(StrategyCodeError, match=r"\(in frist_of\): AttributeError: "):
        backtest(WithBadApply, data=DATA)


def test_a_lambda_in_apply_is_located_on_its_line():
    class Lam(Strategy):
        symbols = ["A"]

        def signal(self, bars):
            return bars.close.rolling(3).apply(lambda w: w[10]) > 0

    with pytest.raises(StrategyCodeError) as info:
        backtest(Lam, data=DATA)
    assert f"{HERE}:{line_of(Lam.signal, 'lambda')} (in <lambda>): IndexError: " in str(
        info.value)


def test_an_error_outside_the_strategy_code_passes_unchanged():
    """A caller's callback that fails is not the strategy's fault."""

    def on_output(out):
        raise RuntimeError("the caller's own bug")

    with pytest.raises(RuntimeError, match="the caller's own bug") as info:
        backtest(Long, data=DATA, on_output=on_output)
    assert not isinstance(info.value, StrategyCodeError)


def test_a_strategy_loaded_from_a_file_is_located_in_that_file(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(
        "from qmtl import Strategy\n"
        "\n"
        "class Mine(Strategy):\n"
        "    symbols = ['A']\n"
        "    def signal(self, bars):\n"
        "        window = 3\n"
        "        return bars.close.sma(windw) > 0\n"
    )
    with pytest.raises(StrategyCodeError) as info:
        backtest(load_strategy(str(f)), data=DATA)
    assert str(info.value) == (
        f"Mine.signal failed at {f}:7 (in signal): NameError: name 'windw' is not defined. "
        "Did you mean: 'window'?"
    )


def test_a_mistake_in_qmtl_arguments_is_located_at_the_users_call():
    class BadWindow(Strategy):
        symbols = ["A"]

        def signal(self, bars):
            return bars.close.sma(0) > 0

    with pytest.raises(StrategyCodeError) as info:
        BadWindow().target()
    line = line_of(BadWindow.signal, "sma(0)")
    assert f"at {HERE}:{line} (in signal): ValueError: " in str(info.value)


def test_exception_line_matches_what_python_prints():
    """The hint is Python's own: the same line the interpreter's display ends with."""
    try:
        np.arrray  # noqa: B018
    except AttributeError as exc:
        assert exception_line(exc) == (
            "AttributeError: module 'numpy' has no attribute 'arrray'. Did you mean: 'array'?"
        )
    assert exception_line(ValueError("x")) == "ValueError: x"


def test_library_files_are_not_the_users():
    assert not is_user_file(np.__file__)
    assert not is_user_file(inspect.__file__)
    assert not is_user_file(inspect.getfile(Strategy))
    assert is_user_file(HERE)
