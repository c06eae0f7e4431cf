"""The book service: one world account's book between its targets and its broker.

Every change goes to the store first and is applied from it (:meth:`BookService.record`):
an order is stored ``new`` before it is sent; what the broker says is stored before the
ledger moves; operator events (``qmtl world halt``, ``resume``, ``reconcile --adopt``)
written to the store by another process are picked up at the next step.

At start (:meth:`BookService.start`) the book settles its in-flight orders by client id (an
order stored ``new`` the venue never got is sent now, under the same id; one it got is
followed), then compares its ledger with the broker's positions, open orders and cash. A
difference beyond the tolerance **refuses to trade** (:class:`RefuseToTrade`, listing what
differs) until an operator adopts the broker's state. A first start adopts the broker's cash
by itself when the account holds none of the book's symbols and has no open order.

>>> import tempfile, os
>>> from connectors.brokers.paper import PaperBroker
>>> from qmtl.book_run.store import open_book_store
>>> store = open_book_store(os.path.join(tempfile.mkdtemp(), "b.db"))
>>> svc = BookService(store, PaperBroker(cash=1000.0), BookConfig("w", symbols=("X",)))
>>> svc.start()
[]
>>> svc.on_target("a", 1, {"X": 0.5}, {"X": 10.0}, ts=1)
>>> svc.set_weights({"a": 1.0})
>>> [(e["qty"], e["client_id"][:2]) for e in svc.step(now=0.0, ts=1)]
[(50.0, 'qm')]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.brokers.base import Broker, BrokerUnavailable
from qmtl.book.decide import BookPolicy, decide
from qmtl.book.errors import BookError
from qmtl.book.ledger import Ledger, request_of
from qmtl.book.model import FillEvent, Instrument, OrderRequest, OrderUpdate
from qmtl.book.reconcile import Difference, Snapshot, compare
from qmtl.book.risk import RateLimit
from qmtl.book_run.store import BookStore
from qmtl.core.errors import QmtlError


class RefuseToTrade(QmtlError, RuntimeError):
    """The ledger and the broker disagree: the book does not trade until they agree or an
    operator adopts the broker's state (``qmtl world reconcile W --adopt``).

    >>> str(RefuseToTrade("w", [Difference("position", "X", "0", "1")]))  # doctest: +ELLIPSIS
    "the book of world 'w' and its broker disagree; refusing to trade:\\n  position X: ..."
    """

    exit_code = 3

    def __init__(self, world: str, diffs: Sequence[Difference], why: str = "") -> None:
        self.diffs = list(diffs)
        lines = "\n".join(f"  {d}" for d in self.diffs)
        super().__init__(
            f"the book of world {world!r} and its broker disagree; refusing to trade"
            f"{': ' + why if why else ''}:\n{lines}\n"
            f"  (see `qmtl world reconcile {world}`; `--adopt` takes the broker's state)"
        )


@dataclass(frozen=True)
class BookConfig:
    """A book's settings: its world and account, the cash currency, the symbols it trades,
    its policy, and the tolerances of reconciliation.

    >>> BookConfig("w").currency
    'USDT'
    """

    world: str
    account: str = "main"
    currency: str = "USDT"
    symbols: tuple[str, ...] = ()
    policy: BookPolicy = field(default_factory=BookPolicy)
    qty_tol: float = 1e-9
    cash_tol: float = 0.01


class BookService:
    """One world account's book (see the module docstring)."""

    def __init__(
        self,
        store: BookStore,
        broker: Broker,
        config: BookConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.broker, self.cfg, self.clock = store, broker, config, clock
        self.led = Ledger(config.world, account=config.account, currency=config.currency)
        self._last = 0
        self._mine: set[int] = set()
        self._unsaved: list[dict[str, Any]] = []  # applied, stored with the next commit
        self.refresh()
        limits = config.policy.limits
        self.rate = RateLimit(limits.max_orders, limits.window_s)
        self.instruments: dict[str, Instrument] = {}
        self.trading = False

    # -- the ledger ------------------------------------------------------------------
    def refresh(self) -> None:
        """Apply the events stored since the last refresh by others (an operator's halt,
        resume or adoption); the book's own were applied when it stored them."""
        for e in self.store.events(self.cfg.world, after=self._last):
            self._last = e["_id"]
            if e["_id"] in self._mine:
                self._mine.discard(e["_id"])
                continue
            self.led.apply(e)

    def record(self, events: Sequence[dict[str, Any]], applied: int = 0) -> None:
        """Store events (committed), then apply them (the first ``applied`` were applied
        already: a decision made on them, stored with them in one commit)."""
        todo, self._unsaved = [*self._unsaved, *events], []
        if not todo:
            return
        self._mine.update(self.store.append(self.cfg.world, todo))
        for e in todo[len(todo) - len(events) + applied :]:
            self.led.apply(e)

    # -- start and reconciliation --------------------------------------------------------
    def broker_snapshot(self) -> Snapshot:
        """The broker's positions, open orders and balances."""
        return Snapshot(
            self.broker.positions(),
            {o.client_id: (o.symbol, o.remaining) for o in self.broker.open_orders()},
            self.broker.balances(),
        )

    def differences(self) -> list[Difference]:
        """The ledger against the broker now."""
        return compare(
            self.led.snapshot(),
            self.broker_snapshot(),
            self.cfg.qty_tol,
            self.cfg.cash_tol,
            currencies=(self.cfg.currency,),
        )

    def start(self) -> list[Difference]:
        """Settle in-flight orders, reconcile, and start trading, or raise
        :class:`RefuseToTrade` (see the module docstring)."""
        self.trading = False
        self.refresh()
        if self.cfg.symbols:
            self.instruments = self.broker.instruments(self.cfg.symbols)
        self.settle()
        snap = self.broker_snapshot()
        if not self.led.adopted:
            if any(snap.positions.get(s) for s in snap.positions) or snap.open_orders:
                raise RefuseToTrade(
                    self.cfg.world,
                    self.differences(),
                    "the broker's account holds positions or orders the book has never seen",
                )
            self.record(
                [
                    {
                        "kind": "adopt",
                        "cash": snap.balances.get(self.cfg.currency, 0.0),
                        "positions": {},
                        "who": "start",
                        "why": "first start, flat account",
                    }
                ]
            )
        diffs = self.differences()
        self.record(
            [{"kind": "note", "what": "reconcile at start", "diffs": [str(d) for d in diffs]}]
        )
        if diffs:
            raise RefuseToTrade(self.cfg.world, diffs)
        self.trading = True
        return diffs

    def adopt(self, who: str, why: str) -> list[Difference]:
        """Take the broker's positions, open orders and cash as the ledger's (audited:
        the event says who, why and what differed)."""
        diffs = self.differences()
        snap = self.broker_snapshot()
        self.record(
            [
                {
                    "kind": "adopt",
                    "cash": snap.balances.get(self.cfg.currency, 0.0),
                    "positions": dict(snap.positions),
                    "open_orders": sorted(c for c in snap.open_orders if c in self.led.orders),
                    "who": who,
                    "why": why,
                    "diffs": [str(d) for d in diffs],
                }
            ]
        )
        return diffs

    def settle(self, resend: bool = True) -> None:
        """Resolve every open order of the ledger by client id: one the venue has is
        followed (a ``new`` one was sent: its answer was lost); a ``new`` one the venue never
        got is sent now, under its id, when ``resend`` (at start; while running, an order
        whose outcome is unknown may still be in flight, and waits); a sent one the venue
        does not know is rejected."""
        for o in self.led.open_orders():
            b = self.broker.order(o.client_id, o.symbol)
            if b is not None and o.status == "new":
                self.record(
                    [
                        {
                            "kind": "status",
                            "client_id": o.client_id,
                            "status": "submitted",
                            "broker_id": b.broker_id,
                        }
                    ]
                )
            elif b is None and o.status == "new":
                if resend:
                    self._send(
                        OrderRequest(
                            o.client_id, o.symbol, o.qty, o.ref_price, shares=o.shares, seq=o.seq
                        )
                    )
            elif b is None:
                self.record(
                    [
                        {
                            "kind": "status",
                            "client_id": o.client_id,
                            "status": "rejected",
                            "reason": "not found at the broker",
                        }
                    ]
                )
        self.sync()

    # -- running ---------------------------------------------------------------------
    def target_event(
        self,
        strategy: str,
        seq: int,
        weights: dict[str, float],
        prices: dict[str, float],
        ts: int = 0,
    ) -> dict[str, Any] | None:
        """The event that stores a strategy's target weights, or None for a seq at or below
        the last one stored (a replay)."""
        if seq <= self.led.target_seq.get(strategy, -1):
            return None
        bad = [s for s, w in weights.items() if not math.isfinite(w)] + [
            s for s, p in prices.items() if not (math.isfinite(p) and p > 0)
        ]
        if bad:
            raise BookError(
                f"target {seq} of {strategy}: not finite or not positive for "
                f"{', '.join(sorted(bad))}"
            )
        return {
            "kind": "target",
            "strategy": strategy,
            "seq": seq,
            "weights": weights,
            "prices": prices,
            "ts": ts,
        }

    def on_target(
        self,
        strategy: str,
        seq: int,
        weights: dict[str, float],
        prices: dict[str, float],
        ts: int = 0,
    ) -> None:
        """Store a strategy's target weights (a replayed seq is dropped)."""
        ev = self.target_event(strategy, seq, weights, prices, ts)
        if ev is not None:
            self.record([ev])

    def on_prices(self, prices: dict[str, float], ts: int) -> None:
        """Store new prices (the last bar's closes)."""
        self.record([{"kind": "mark", "prices": prices, "ts": ts}])

    def set_weights(
        self, weights: dict[str, float], held: Sequence[str] = (), known: bool = True
    ) -> None:
        """Store the world's activation when it changed (see :mod:`qmtl.book_run.world`)."""
        ev = {"kind": "weights", "weights": weights, "held": sorted(held), "known": known}
        if (self.led.weights, self.led.held, self.led.world_known) != (weights, set(held), known):
            self.record([ev])

    def halt(self, who: str, reason: str) -> None:
        """HALTED by an operator (audited)."""
        self.record([{"kind": "state", "state": "HALTED", "reason": reason, "who": who}])

    def step(
        self, now: float | None = None, ts: int = 0, inputs: Sequence[dict[str, Any]] = ()
    ) -> list[dict[str, Any]]:
        """Decide, store, send; returns the order events sent. ``inputs`` (target, mark or
        weights events) are applied first and stored in the decision's commit: one commit
        between a bar and its order (a commit that fails raises, and the process restarts
        from the store). Does nothing but store the inputs before a successful
        :meth:`start`."""
        self.refresh()
        if not self.trading:
            self.record(inputs)
            return []
        for e in inputs:
            self.led.apply(e)
        now = self.clock() if now is None else now
        events = decide(self.led, self.instruments, self.cfg.policy, self.rate, now, ts)
        self.record([*inputs, *events], applied=len(inputs))
        sent = [e for e in events if e["kind"] == "order"]
        for e in sent:
            self._send(request_of(e))
        return sent

    def _send(self, req: OrderRequest) -> None:
        """Send a stored order; the venue's answer is applied now and stored with the next
        commit (a crash before it loses nothing: the restart asks by client id)."""
        cid = req.client_id
        try:
            out = self.broker.submit(req)
        except BrokerUnavailable as e:  # unknown: stays as it is, settled by client id
            ev = {"kind": "note", "what": "submit outcome unknown", "client_id": cid, "why": str(e)}
        else:
            if out.ok:
                ev = {
                    "kind": "status",
                    "client_id": cid,
                    "status": "submitted",
                    "broker_id": out.broker_id,
                }
            elif "duplicate" in out.reason.lower():  # the venue has it: follow it
                ev = {"kind": "status", "client_id": cid, "status": "submitted"}
            else:
                ev = {
                    "kind": "status",
                    "client_id": cid,
                    "status": "rejected",
                    "reason": out.reason,
                }
        self.led.apply(ev)
        self._unsaved.append(ev)

    def sync(self) -> int:
        """Store what the broker says of the open orders (new fills and status changes);
        returns how many events."""
        watching = [(o.client_id, o.symbol) for o in self.led.open_orders()]
        if not watching:
            self.record([])  # what was applied since the last commit
            return 0
        events: list[dict[str, Any]] = []
        for e in self.broker.poll(watching):
            o = self.led.orders.get(e.client_id)
            if o is None:
                continue
            if isinstance(e, FillEvent):
                if e.trade_id not in o.trades and e.trade_id not in {
                    x.get("trade_id") for x in events
                }:
                    events.append(
                        {
                            "kind": "fill",
                            "client_id": e.client_id,
                            "trade_id": e.trade_id,
                            "qty": e.qty,
                            "price": e.price,
                            "fee": e.fee,
                            "ts": e.ts,
                        }
                    )
            elif isinstance(e, OrderUpdate) and e.status != o.status:
                events.append(
                    {
                        "kind": "status",
                        "client_id": e.client_id,
                        "status": e.status,
                        "reason": e.reason,
                        "broker_id": e.broker_id,
                    }
                )
        # a status that only moves an order to where its fills brought it says nothing new
        self.record(events)
        return len(events)
