"""The book as a process (``qmtl world book-run``): brokers named by a spec, and the loop
that reads targets, follows the world's activation, settles fills, decides and reconciles.

Broker specs:

- ``paper:PATH[?cash=..&fee_bps=..&slippage_bps=..&rule=next_open|close]``: the paper
  broker, its account kept in the JSON file ``PATH``; it fills at the prices the targets
  carry (a target at bar t fills the orders decided before t at t's close: the next-bar rule
  on the bars the book sees);
- ``ccxt:EXCHANGE[?sandbox=1&config=FILE]``: the ccxt adapter; keys from
  ``$QMTL_BROKER_KEY`` and ``$QMTL_BROKER_SECRET``; ``config`` a JSON file passed to ccxt
  (``urls``, ``options``, ``timeout``).

>>> broker_from_spec("paper:/tmp/x.json?cash=5", ("X",)).balances()["USDT"] >= 0
True
>>> broker_from_spec("ib:x", ())
Traceback (most recent call last):
...
connectors.brokers.base.BrokerError: unknown broker 'ib:x': use paper:PATH or ccxt:EXCHANGE
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote

from connectors.brokers.base import Broker, BrokerError, BrokerUnavailable
from connectors.brokers.ccxt_broker import CcxtBroker
from connectors.brokers.paper import PaperBroker
from dataflows.execution import Execution
from dataflows.gate import ActivationBook
from qmtl.book_run.marks import MarkedReturns
from qmtl.book_run.service import BookService
from qmtl.book_run.targets import TargetUpdate
from qmtl.book_run.world import weights_event

log = logging.getLogger("qmtl.book")

BOOK_POST_MAX = 10_000
"""The most return points the book sends the world in one request."""


def world_poster(client: Any, world: str) -> Callable[[list[tuple[int, float]]], None]:
    """``post_returns`` for :class:`Loop`: the points to ``POST /worlds/{world}/book/returns``
    through a :class:`world_api.client.WorldServiceClient` (a re-sent point is ignored
    there, so a retry after a lost answer is safe).

    >>> sent = []
    >>> class C:
    ...     def call(self, method, path, json): sent.append((method, path, json))
    >>> world_poster(C(), "w 1")([(5, 0.01)]); sent
    [('POST', '/worlds/w%201/book/returns', [{'ts': 5, 'return': 0.01}])]
    """
    path = f"/worlds/{quote(world, safe='')}/book/returns"

    def post(points: list[tuple[int, float]]) -> None:
        client.call("POST", path, json=[{"ts": int(t), "return": float(r)} for t, r in points])

    return post


def broker_from_spec(spec: str, symbols: tuple[str, ...]) -> Broker:
    """A broker from its spec (see the module docstring)."""
    kind, _, rest = spec.partition(":")
    where, _, query = rest.partition("?")
    opts = dict(parse_qsl(query))
    if kind == "paper" and where:
        return PaperBroker(
            cash=float(opts.get("cash", 0.0)),
            fee_bps=float(opts.get("fee_bps", 0.0)),
            slippage_bps=float(opts.get("slippage_bps", 0.0)),
            execution=Execution(rule=opts.get("rule", "next_open")),  # type: ignore[arg-type]
            currency=opts.get("currency", "USDT"),
            state=where,
        )
    if kind == "ccxt" and where:
        config: dict[str, Any] = {}
        if opts.get("config"):
            config = json.loads(Path(opts["config"]).read_text())
        return CcxtBroker(
            where,
            symbols,
            os.environ.get("QMTL_BROKER_KEY", ""),
            os.environ.get("QMTL_BROKER_SECRET", ""),
            sandbox=opts.get("sandbox", "0") in ("1", "true", "yes"),
            config=config,
            quote=opts.get("quote", "USDT"),
        )
    raise BrokerError(f"unknown broker {spec!r}: use paper:PATH or ccxt:EXCHANGE")


class Targets(Protocol):
    """A source of target updates (:mod:`qmtl.book_run.targets`)."""

    def poll(self) -> list[TargetUpdate]:
        """What arrived."""
        ...

    def close(self) -> None:
        """Release it."""
        ...


@dataclass
class Loop:
    """The book's loop (see the module docstring). ``activation`` is the order gate's
    activation book of the world (kept current by a subscriber), or None with fixed
    ``weights`` (a dry run). ``post_returns`` sends the book's marked-to-market return
    points to the world (:func:`world_poster`); a failed post is logged and retried at
    the next pass, and never holds up trading."""

    svc: BookService
    targets: Targets
    activation: ActivationBook | None = None
    weights: dict[str, float] | None = None
    max_age: float = 30.0
    reconcile_every: float = 60.0
    poll_s: float = 0.2
    clock: Callable[[], float] = time.monotonic
    post_returns: Callable[[list[tuple[int, float]]], None] | None = None

    def __post_init__(self) -> None:
        self._reconciled = self.clock()
        self._lost = False
        self.marks = MarkedReturns(start=self.svc.led.equity())
        self._post_failed = False

    def once(self) -> int:
        """One pass: read targets, fill paper orders at their prices, follow the world,
        settle, decide, and reconcile when due (or after a lost connection); returns how
        many updates were read."""
        ups = self.targets.poll()
        svc = self.svc
        try:
            for u in ups:
                if isinstance(svc.broker, PaperBroker):
                    for sym, p in u.prices.items():
                        svc.broker.on_bar(sym, u.ts, p, p)
            batch = [svc.target_event(u.strategy_id, u.seq, u.weights, u.prices, u.ts) for u in ups]
            self._follow_world({u.strategy_id for u in ups})
            svc.sync()
            svc.step(
                ts=max((u.ts for u in ups), default=0), inputs=[e for e in batch if e is not None]
            )
            commit = getattr(self.targets, "commit", None)
            if commit is not None:
                commit()
            if self._lost or self.clock() - self._reconciled >= self.reconcile_every:
                self.reconcile()
            self._lost = False
        except BrokerUnavailable as e:
            if not self._lost:
                log.warning("broker unreachable (%s): reconciling when it is back", e)
            self._lost = True
        if ups:
            self.marks.observe(max(u.ts for u in ups), svc.led.equity())
        self.post_marks()
        return len(ups)

    def post_marks(self) -> None:
        """Send the closed bars' returns the world does not have yet (at most
        ``BOOK_POST_MAX`` a pass); a failure is logged once and retried next pass."""
        todo = self.marks.pending[:BOOK_POST_MAX]
        if self.post_returns is None or not todo:
            return
        try:
            self.post_returns(todo)
        except Exception as e:  # fail soft: trading goes on, the points wait
            if not self._post_failed:
                log.warning("cannot post the book's returns to world %s (%s): retrying",
                            self.svc.cfg.world, e)
            self._post_failed = True
            return
        self._post_failed = False
        self.marks.sent(len(todo))

    def _follow_world(self, arriving: set[str]) -> None:
        strategies = (
            arriving | set(self.svc.led.targets) | {s for s, _ in self.svc.led.strategy_pos}
        )
        if self.activation is not None:
            ev = weights_event(self.activation, strategies, time.monotonic(), self.max_age)
            self.svc.set_weights(ev["weights"], ev["held"], ev["known"])
        elif self.weights is not None:
            self.svc.set_weights(dict(self.weights))

    def reconcile(self) -> None:
        """Compare with the broker; on a difference the book halts (it never overwrites
        its ledger by itself) and says what differs."""
        self._reconciled = self.clock()
        self.svc.settle(resend=False)  # orders whose answer was lost, and fills, first
        diffs = self.svc.differences()
        if diffs and self.svc.led.state != "HALTED":
            lines = "; ".join(str(d) for d in diffs)
            log.error("book of %s differs from its broker: %s; HALTED", self.svc.cfg.world, lines)
            self.svc.record(
                [
                    {
                        "kind": "state",
                        "state": "HALTED",
                        "who": "reconcile",
                        "reason": f"the broker differs: {lines}",
                    }
                ]
            )

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set."""
        while not stop.is_set():
            if not self.once():
                stop.wait(self.poll_s)
