"""What a seamless provider reports: bars no layer has, a backfill that failed, and ranges
written for people.

>>> str(BackfillError("origin down"))
'origin down'
"""

from __future__ import annotations

from connectors.data.catalog import CatalogError
from connectors.data.origins import OriginError, SymbolNotFound
from qmtl.core.errors import QmtlError
from qmtl.core.times import format_ts


def _fmt(ns: int | None) -> str:
    return "-" if ns is None else format_ts(ns)


def span(a: int | None, b: int | None) -> str:
    """A closed range for people: an end 1 ns before a whole second reads "before" it, a
    start 1 ns after one reads "after" it.

    >>> span(0, 60 * 10**9 - 1)
    '1970-01-01T00:00:00Z .. before 1970-01-01T00:01:00Z'
    >>> span(60 * 10**9 + 1, 120 * 10**9)
    'after 1970-01-01T00:01:00Z .. 1970-01-01T00:02:00Z'
    """
    left = (f"after {_fmt(a - 1)}" if a is not None and (a - 1) % 10**9 == 0 and a % 10**9
            else _fmt(a))
    right = (f"before {_fmt(b + 1)}" if b is not None and (b + 1) % 10**9 == 0 and b % 10**9
             else _fmt(b))
    return f"{left} .. {right}"


class DataNotFound(QmtlError, LookupError):
    """No layer has the bars asked for; the message names the symbol, interval, range and
    what every layer said.

    >>> str(DataNotFound("X", "1d", 0, None, ["cache (nothing held)"]))
    "no 1d bars for 'X' in 1970-01-01T00:00:00Z .. -; looked in: cache (nothing held)"
    """

    def __init__(self, symbol: str, interval: str, start: int | None, end: int | None,
                 looked: list[str], headline: str | None = None) -> None:
        self.symbol, self.interval, self.start, self.end = symbol, interval, start, end
        self.looked = looked
        head = headline or f"no {interval} bars for {symbol!r} in {span(start, end)}"
        super().__init__(f"{head}; looked in: " + "; ".join(looked))

    def __str__(self) -> str:
        return str(self.args[0])


class BackfillError(QmtlError, OSError):
    """A backfill origin or QuestDB failed on a range; nothing of that range was written."""


def describe_errors() -> tuple[type[BaseException], ...]:
    """The exception types a provider raises for bad data requests (for CLIs to report).

    >>> DataNotFound in describe_errors()
    True
    """
    return (DataNotFound, BackfillError, CatalogError, OriginError, SymbolNotFound)
