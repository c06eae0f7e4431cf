"""The order gate: target weights become orders only for an active strategy, and it fails
closed.

:class:`ActivationBook` holds what the gate knows of a world's activation table: the latest
ActivationEvent per strategy, when the world last confirmed it (an event, a snapshot or a
heartbeat) and whether the subscription is up. It is fed by a subscriber thread and read by
the flow, so it locks; it does no I/O.

:func:`verdict` turns that into one of three answers for a strategy:

- ``trade`` (active, weight w, confirmed recently): orders follow the targets, scaled by w;
- ``flatten`` (known inactive, confirmed recently): orders take every position to zero;
- ``hold`` (no activation known, the latest is older than ``max_age``, the subscription is
  lost, or the world is frozen while it applies a plan): no orders at all; the reason says
  which, and ``cause`` names it in one word (:data:`HOLD_CAUSES`).

A world that goes away while the run follows it is not one to trade in again: once the book
learns that the world is gone (:meth:`ActivationBook.vanish`: its activation answered 404) or
was replaced (an event or a snapshot whose seq is below one already seen, or a snapshot
whose policy version is: the world was deleted and made again, its seqs restarted), every
order of every strategy is held for the rest of the run, whatever the world says later; the
run must be restarted to follow the new world. A strategy that a later snapshot no longer
lists is held too (not flattened: the world no longer decides for it).

A world applying a plan sends control events: ``freeze`` (and ``drain``) hold every
strategy's orders until ``unfreeze`` (:meth:`ActivationBook.control`); a snapshot taken
meanwhile says ``frozen`` too.

When the world decides stages (its policy has a ``promotion`` section), the book also keeps
each strategy's stage (``backtest``, ``paper``, ``live``) from the snapshot and from the
events that carry one (``stage`` set); :meth:`ActivationBook.stage` is None for a world that
does not decide stages, ``backtest`` for a strategy it has not placed yet. Events without
``stage`` leave it as it is, so books and streams of either age work together.

:class:`OrderGate` is one strategy's gate: for each bar row it sizes a target
(``strategy weight x world weight x capital / close``) and emits an OrderIntent when the
target weight changes, keyed for idempotency by (world, strategy, symbol, bar ts).

>>> book = ActivationBook("w")
>>> verdict(book, "s", now=0.0, max_age=30.0).reason
"no connection to world 'w' (not connected yet): orders for 's' held"
>>> book.confirm(now=0.0)
>>> verdict(book, "s", now=0.0, max_age=30.0).reason
"no activation known for 's' in world 'w'"
>>> book.apply_event({"strategy_id": "s", "active": True, "weight": 0.5, "seq": 1}, now=0.0)
>>> v = verdict(book, "s", now=1.0, max_age=30.0)
>>> v.kind, v.weight
('trade', 0.5)
>>> verdict(book, "s", now=31.0, max_age=30.0).reason
"activation of 's' is 31 s old > --max-activation-age 30 s"
>>> book.load_snapshot({"seq": 0, "strategies": [
...     {"strategy_id": "s", "active": False, "weight": 0.0}]}, now=32.0)   # made again
>>> v = verdict(book, "s", now=32.0, max_age=30.0); v.kind, v.cause
('hold', 'world_restarted')
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from qmtl.core.contracts import OrderIntent

HoldCause = Literal[
    "world_gone",
    "world_restarted",
    "frozen",
    "connecting",
    "lost",
    "no_activation",
    "unlisted",
    "stale",
    "stage",
]

HOLD_CAUSES: tuple[str, ...] = get_args(HoldCause)
"""Why the gate holds, in one word each: the world was deleted (``world_gone``) or replaced
(``world_restarted``), it is applying a plan (``frozen``), the run has not reached it yet
(``connecting``), the subscription is down (``lost``), the strategy has no activation yet
(``no_activation``) or a snapshot no longer lists it (``unlisted``), the activation is older
than ``--max-activation-age`` (``stale``), the world's stage for it is ``backtest``
(``stage``, decided by the order step)."""


@dataclass
class Activation:
    """The latest known activation of one strategy.

    >>> Activation(active=True, weight=0.5, seq=3).weight
    0.5
    """

    active: bool
    weight: float
    seq: int


class ActivationBook:
    """A world's activation table as the gate sees it (see the module docstring).

    >>> b = ActivationBook("w"); b.confirm(now=5.0); b.state("s")
    (None, 5.0, None)
    """

    def __init__(self, world: str) -> None:
        self.world = world
        self.seq = 0
        self._rows: dict[str, Activation] = {}
        self._confirmed: float | None = None
        self._lost: str | None = "not connected yet"
        self.frozen: str | None = None  # why the world holds orders (a plan apply), or None
        self._lock = threading.Lock()
        self._stages: dict[str, str] = {}
        self.managed = False  # the world decides stages
        self.policy_version = 0  # the highest seen
        self.gone: tuple[str, str] | None = None  # (cause, why): latched, see the docstring
        self._unlisted: set[str] = set()  # known once, not in the latest snapshot

    def _restarted(self, seq: int, policy_version: int | None, what: str) -> bool:
        """Latch ``world_restarted`` when ``seq`` or ``policy_version`` is below one seen
        (lock held)."""
        if self.gone is not None:
            return True
        if seq < self.seq:
            why = f"seq {seq} < seq {self.seq} already seen"
        elif policy_version is not None and policy_version < self.policy_version:
            why = f"policy version {policy_version} < version {self.policy_version} already seen"
        else:
            return False
        self.gone = (
            "world_restarted",
            f"world {self.world!r} restarted its events ({what} at {why}: deleted and made again?)",
        )
        return True

    def vanish(self, why: str) -> None:
        """The world is gone (its activation answered 404): every order is held for the rest
        of the run.

        >>> b = ActivationBook("w"); b.confirm(now=0.0); b.vanish("GET /worlds/w/activation: 404")
        >>> verdict(b, "s", now=0.0, max_age=30.0).reason
        "world 'w' is gone (GET /worlds/w/activation: 404): orders for 's' held for the rest of \
the run; restart it to follow the world again"
        """
        with self._lock:
            if self.gone is None:
                self.gone = ("world_gone", f"world {self.world!r} is gone ({why})")

    def load_snapshot(self, snapshot: dict[str, Any], now: float) -> None:
        """Replace the table with a snapshot (``GET /worlds/{id}/activation``). A snapshot
        below the seq (or policy version) already seen is a restarted world: the book is
        latched gone and keeps its table. A strategy known before and not listed now is
        ``unlisted``.

        >>> b = ActivationBook("w")
        >>> b.load_snapshot({"seq": 4, "strategies": [
        ...     {"strategy_id": "s", "active": True, "weight": 0.2}]}, now=0.0)
        >>> b.get("s"), b.seq
        (Activation(active=True, weight=0.2, seq=4), 4)
        >>> b.load_snapshot({"seq": 4, "strategies": []}, now=1.0)
        >>> verdict(b, "s", now=1.0, max_age=30.0).cause
        'unlisted'
        """
        with self._lock:
            seq = int(snapshot["seq"])
            version = snapshot.get("policy_version")
            version = int(version) if version is not None else None
            if self._restarted(seq, version, "a snapshot"):
                return
            listed = {r["strategy_id"] for r in snapshot["strategies"]}
            self._unlisted = (self._unlisted | set(self._rows)) - listed
            if version is not None:
                self.policy_version = version
            self._rows = {
                r["strategy_id"]: Activation(bool(r["active"]), float(r["weight"]), seq)
                for r in snapshot["strategies"]
            }
            self.seq = seq
            self.frozen = snapshot.get("frozen") or None
            self.managed = bool(snapshot.get("stages", False))
            self._stages = {
                r["strategy_id"]: r["stage"] for r in snapshot["strategies"] if r.get("stage")
            }
            self._confirmed = now
            self._lost = None

    def control(self, event: dict[str, Any], now: float) -> None:
        """Apply one ControlEvent (as a dict): ``freeze``/``drain``/``switch`` hold orders,
        ``unfreeze`` releases them; events at or before ``seq`` are ignored.

        >>> b = ActivationBook("w"); b.confirm(now=0.0)
        >>> b.control({"seq": 1, "step": "freeze", "plan_id": "p"}, now=0.0); b.frozen
        "plan 'p' is being applied (freeze)"
        >>> b.control({"seq": 2, "step": "unfreeze", "plan_id": "p"}, now=0.0); b.frozen
        """
        with self._lock:
            seq = int(event["seq"])
            if self._restarted(seq, None, "a control event"):
                return
            if seq > self.seq:
                step = event["step"]
                self.frozen = (
                    None
                    if step == "unfreeze"
                    else f"plan {event['plan_id']!r} is being applied ({step})"
                )
                self.seq = seq
            self._confirmed = now
            self._lost = None

    def advance(self, seq: int, now: float) -> None:
        """An event at ``seq`` that changes no activation (an evaluation event): the book
        has seen up to it (one at ``seq`` is a repeat; below it, a restarted world is
        latched), so a snapshot's seq is not ahead of the book for it.

        >>> b = ActivationBook("w"); b.advance(3, now=0.0); b.advance(3, now=0.0)
        >>> b.seq, b.gone
        (3, None)
        """
        with self._lock:
            if self._restarted(seq, None, "an event"):
                return
            self.seq = max(self.seq, seq)
            self._confirmed = now
            self._lost = None

    def apply_event(self, event: dict[str, Any], now: float) -> None:
        """Apply one ActivationEvent (as a dict); an event at ``seq`` is a repeat, ignored;
        one below it is a restarted world (latched).

        >>> b = ActivationBook("w")
        >>> b.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 5}, 0.0)
        >>> b.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 5}, 0.0)
        >>> b.gone is None
        True
        >>> b.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 1}, 0.0)
        >>> b.gone[0]
        'world_restarted'
        """
        with self._lock:
            seq = int(event["seq"])
            if self._restarted(seq, None, "an event"):
                return
            if seq > self.seq:
                self._rows[event["strategy_id"]] = Activation(
                    bool(event["active"]), float(event["weight"]), seq
                )
                self._unlisted.discard(event["strategy_id"])
                self.seq = seq
                if event.get("stage"):
                    self._stages[event["strategy_id"]] = event["stage"]
                    self.managed = True
            self._confirmed = now
            self._lost = None

    def confirm(self, now: float) -> None:
        """The world is there and nothing changed (a heartbeat)."""
        with self._lock:
            self._confirmed = now
            self._lost = None

    def lose(self, why: str) -> None:
        """The subscription is down: everything held until it is back."""
        with self._lock:
            self._lost = why

    def get(self, strategy_id: str) -> Activation | None:
        """The latest activation of ``strategy_id``, or None."""
        with self._lock:
            return self._rows.get(strategy_id)

    def stage(self, strategy_id: str) -> str | None:
        """The stage the world put ``strategy_id`` in (None: the world decides no stages).

        >>> b = ActivationBook("w"); b.stage("s") is None
        True
        >>> b.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 1,
        ...                "stage": "paper"}, now=0.0)
        >>> b.stage("s"), b.stage("t")
        ('paper', 'backtest')
        """
        with self._lock:
            if not self.managed:
                return None
            return self._stages.get(strategy_id, "backtest")

    def state(self, strategy_id: str) -> tuple[Activation | None, float | None, str | None]:
        """``(activation, confirmed at, why lost)`` read together."""
        with self._lock:
            return self._rows.get(strategy_id), self._confirmed, self._lost

    def unlisted(self, strategy_id: str) -> bool:
        """A snapshot no longer lists ``strategy_id`` (known before, no event since)."""
        with self._lock:
            return strategy_id in self._unlisted


@dataclass(frozen=True)
class Verdict:
    """What the gate may do for a strategy now.

    >>> Verdict("hold", reason="no activation known", cause="no_activation").weight
    0.0
    """

    kind: Literal["trade", "flatten", "hold"]
    weight: float = 0.0
    reason: str = ""
    cause: str = ""  # why a hold holds: one of HOLD_CAUSES


def verdict(book: ActivationBook, strategy_id: str, now: float, max_age: float) -> Verdict:
    """``trade``, ``flatten`` or ``hold`` for ``strategy_id`` (see the module docstring).

    >>> b = ActivationBook("w")
    >>> b.apply_event({"strategy_id": "s", "active": False, "weight": 0.0, "seq": 2}, now=0.0)
    >>> verdict(b, "s", now=1.0, max_age=30.0).kind
    'flatten'
    >>> b.lose("connection reset")
    >>> verdict(b, "s", now=1.0, max_age=30.0).reason
    "no connection to world 'w' (connection reset): orders for 's' held"
    """
    gone = book.gone
    if gone is not None:
        return Verdict(
            "hold",
            cause=gone[0],
            reason=f"{gone[1]}: orders for {strategy_id!r} "
            "held for the rest of the run; restart it to follow the world again",
        )
    act, confirmed, lost = book.state(strategy_id)
    frozen = book.frozen
    if lost is None and frozen is not None:
        return Verdict(
            "hold",
            cause="frozen",
            reason=f"world {book.world!r} is frozen: {frozen}: orders "
            f"for {strategy_id!r} held until it unfreezes",
        )
    if lost is not None:
        return Verdict(
            "hold",
            cause="lost" if confirmed is not None else "connecting",
            reason=f"no connection to world {book.world!r} ({lost}): orders for "
            f"{strategy_id!r} held",
        )
    if act is None:
        if book.unlisted(strategy_id):
            return Verdict(
                "hold",
                cause="unlisted",
                reason=f"world {book.world!r} no longer "
                f"lists {strategy_id!r} in its activation: orders held",
            )
        return Verdict(
            "hold",
            cause="no_activation",
            reason=f"no activation known for {strategy_id!r} in world {book.world!r}",
        )
    age = now - (confirmed if confirmed is not None else now)
    if age > max_age:
        return Verdict(
            "hold",
            cause="stale",
            reason=f"activation of {strategy_id!r} is {age:.0f} s old > "
            f"--max-activation-age {max_age:.0f} s",
        )
    if not act.active:
        return Verdict("flatten", reason=f"{strategy_id!r} is inactive in world {book.world!r}")
    return Verdict("trade", weight=act.weight, reason="active")


@dataclass
class OrderGate:
    """One strategy's gate (see the module docstring). Its state (the last target weight
    sent per symbol, and the last reason orders were held) is small and picklable, for
    Bytewax recovery.

    >>> g = OrderGate("w", "s", capital=1000.0)
    >>> [o.target_qty for o in g.on_bar("A", 1, weight=0.5, close=10.0,
    ...                                 v=Verdict("trade", weight=1.0))]
    [50.0]
    >>> g.on_bar("A", 2, weight=0.5, close=11.0, v=Verdict("trade", weight=1.0))
    []
    >>> [o.target_qty for o in g.on_bar("A", 3, 0.5, 12.0, Verdict("flatten"))]
    [0.0]
    """

    world: str
    strategy_id: str
    capital: float
    min_weight_change: float = 1e-9
    targets: dict[str, float] = field(default_factory=dict)
    held: str | None = None
    venue: str | None = None  # where orders went last: "paper", "live" or "hold"

    def switch(self, venue: str) -> bool:
        """Orders go to ``venue`` from now on; True when that is a change. The targets sent
        are forgotten on a change, so the next bar sends every target to the new venue.

        >>> g = OrderGate("w", "s", 1.0, targets={"A": 0.5}, venue="paper")
        >>> g.switch("live"), g.targets
        (True, {})
        """
        if venue == self.venue:
            return False
        if self.venue is not None:
            self.targets.clear()
        self.venue = venue
        return True

    def on_bar(
        self, symbol: str, ts: int, weight: float, close: float, v: Verdict
    ) -> list[OrderIntent]:
        """The order (if any) for ``symbol`` after its bar at ``ts``: ``weight`` is the
        strategy's target weight, ``close`` the bar's close, ``v`` the gate's verdict."""
        if v.kind == "hold":
            self.held = v.reason
            return []
        self.held = None
        target_w = weight * v.weight if v.kind == "trade" else 0.0
        last = self.targets.get(symbol, 0.0)
        if abs(target_w - last) <= self.min_weight_change:
            return []
        self.targets[symbol] = target_w
        qty = target_w * self.capital / close
        reason = "rebalance" if v.kind == "trade" else "deactivated: flatten"
        return [
            OrderIntent(
                world=self.world,
                strategy_id=self.strategy_id,
                symbol=symbol,
                ts=ts,
                target_weight=target_w,
                target_qty=qty,
                reason=reason,
            )
        ]
