"""The one broker interface the book talks to. An adapter sends commands and reports what
the venue says; the order state machine is the book's (:mod:`qmtl.book.orders`).

Every command has one of three outcomes: a definitive answer from the venue (accepted,
rejected, cancelled, not found), or **unknown** (:class:`BrokerUnavailable`: the connection
dropped, the request timed out): the book then keeps the order as it was and asks again by
client id (:meth:`Broker.order`), and never sends it again on a timeout.

>>> Submitted("accepted", broker_id="42").ok
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qmtl.book.model import BrokerOrder, FillEvent, Instrument, OrderRequest, OrderUpdate
from qmtl.core.errors import QmtlError


class BrokerUnavailable(QmtlError, ConnectionError):
    """The broker could not be reached or did not answer: the command's outcome is unknown.

    >>> isinstance(BrokerUnavailable("x"), ConnectionError)
    True
    """


class BrokerError(QmtlError, RuntimeError):
    """The broker answered, and the answer is an error that is not about one order (bad
    keys, no sandbox, an unknown symbol): nothing was done.

    >>> str(BrokerError("no sandbox"))
    'no sandbox'
    """


@dataclass(frozen=True)
class Submitted:
    """The venue's answer to a submit: ``accepted`` (with its own id) or ``rejected`` (with
    the venue's reason).

    >>> Submitted("rejected", reason="insufficient balance").ok
    False
    """

    status: str
    broker_id: str = ""
    reason: str = ""

    @property
    def ok(self) -> bool:
        """Whether the venue took the order."""
        return self.status == "accepted"


class Broker(ABC):
    """A venue account (see the module docstring). Quantities are signed (positive buys);
    positions are per symbol; balances per currency.

    >>> sorted(m for m in Broker.__abstractmethods__)  # doctest: +NORMALIZE_WHITESPACE
    ['balances', 'cancel', 'instruments', 'open_orders', 'order', 'poll', 'positions',
     'submit']
    """

    name: str = "broker"

    @abstractmethod
    def instruments(self, symbols: Iterable[str]) -> dict[str, Instrument]:
        """Each symbol's lot, tick and minimums."""

    @abstractmethod
    def submit(self, req: OrderRequest) -> Submitted:
        """Send an order under its client id (raises :class:`BrokerUnavailable` when the
        outcome is unknown)."""

    @abstractmethod
    def cancel(self, client_id: str, symbol: str) -> bool:
        """Cancel an order: True if the venue cancelled it, False if it had no such open
        order."""

    @abstractmethod
    def order(self, client_id: str, symbol: str) -> BrokerOrder | None:
        """One order by client id (None: the venue has never seen it)."""

    @abstractmethod
    def open_orders(self) -> list[BrokerOrder]:
        """Every open order of the account, the book's and any other."""

    @abstractmethod
    def positions(self) -> dict[str, float]:
        """Quantity held per symbol."""

    @abstractmethod
    def balances(self) -> dict[str, float]:
        """Cash per currency."""

    @abstractmethod
    def poll(self, watching: Sequence[tuple[str, str]]) -> list[OrderUpdate | FillEvent]:
        """The status changes and fills of the orders ``(client id, symbol)`` the book is
        watching, since it last asked (a fill may come again: the book drops repeats by
        trade id)."""

    def close(self) -> None:
        """Release connections (nothing by default)."""
        return None
