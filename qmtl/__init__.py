"""QMTL: write a quant strategy once; replay it fast and run it live on one Bytewax graph.

>>> from qmtl import Strategy, ind, where
>>> class MeanRevert(Strategy):
...     symbols = ["SPY"]
...     def signal(self, bars):
...         r = ind.rsi(bars.close, 14)
...         return where(r < 30, 1.0, 0.0)
>>> MeanRevert().target().op
'where'
"""

from typing import Any

from qmtl import indicators as ind
from qmtl.core.expr import Expr, col, latch, lit, where
from qmtl.operator import Operator, check_batch_invariance
from qmtl.strategy import Bars, Strategy, StrategyError
from qmtl.submit import Runner, submit, validate

__version__ = "0.1.0"


def backtest(strategy: Any, data: Any = None, **options: Any) -> Any:
    """Replay history through a strategy and return a ``BacktestResult``.

    A lazy alias of :func:`qmtl.runner.backtest` (which documents every option), so that
    ``import qmtl`` stays light.
    """
    from qmtl.runner import backtest as _backtest

    return _backtest(strategy, data, **options)


__all__ = [
    "Bars",
    "Expr",
    "Operator",
    "Runner",
    "Strategy",
    "StrategyError",
    "backtest",
    "check_batch_invariance",
    "col",
    "ind",
    "latch",
    "lit",
    "submit",
    "validate",
    "where",
]
