"""What ``qmtl.submit(..., auto_returns=...)`` accepts, checked before anything connects
(pure: no I/O).

>>> auto_returns_config("simple")
AutoReturnsConfig(kind='simple', price='close', execution=None)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from qmtl.core.errors import QmtlError


class AutoReturnsError(QmtlError, ValueError):
    """An ``auto_returns`` that cannot work (the message says what is accepted).

    >>> str(AutoReturnsError("x"))
    'x'
    """


@dataclass(frozen=True)
class AutoReturnsConfig:
    """How ``submit`` derives returns when the strategy gives none (see the module
    docstring): ``kind`` of a given series (``simple`` or ``log``), the ``price`` field
    returns are derived from (``close``: the engine's; the execution rule says whether a
    trade fills at a close or the next open) and the ``execution`` rule (None: the
    strategy's).

    >>> AutoReturnsConfig(kind="log").kind
    'log'
    >>> AutoReturnsConfig(price="vwap")
    Traceback (most recent call last):
    ...
    qmtl.auto_returns.AutoReturnsError: AutoReturnsConfig.price must be 'close', got 'vwap'
    """

    kind: Literal["simple", "log"] = "simple"
    price: str = "close"
    execution: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("simple", "log"):
            raise AutoReturnsError(f"AutoReturnsConfig.kind must be 'simple' or 'log', got "
                              f"{self.kind!r}")
        if self.price != "close":
            raise AutoReturnsError(f"AutoReturnsConfig.price must be 'close', got {self.price!r}")
        if self.execution is not None and self.execution not in ("close", "next_open"):
            raise AutoReturnsError(f"AutoReturnsConfig.execution must be 'close' or 'next_open' "
                              f"(or None: the strategy's), got {self.execution!r}")


AutoReturns = bool | Literal["simple", "log"] | AutoReturnsConfig
"""What ``auto_returns`` accepts."""


def auto_returns_config(value: object) -> AutoReturnsConfig | None:
    """``auto_returns`` as a config (None: off); anything but ``True``, ``False``,
    ``"simple"``, ``"log"`` or an :class:`AutoReturnsConfig` is refused.

    >>> auto_returns_config(True), auto_returns_config(False)
    (AutoReturnsConfig(kind='simple', price='close', execution=None), None)
    >>> auto_returns_config("log").kind
    'log'
    >>> auto_returns_config(None)
    Traceback (most recent call last):
    ...
    qmtl.auto_returns.AutoReturnsError: auto_returns must be True, False, 'simple', ...; got None
    """
    if isinstance(value, AutoReturnsConfig):
        return value
    if value is True:
        return AutoReturnsConfig()
    if value is False:
        return None
    if isinstance(value, str) and value in ("simple", "log"):
        return AutoReturnsConfig(kind=value)  # type: ignore[arg-type]
    raise AutoReturnsError("auto_returns must be True, False, 'simple', 'log' or an "
                      f"AutoReturnsConfig; got {value!r}")
