"""The gate's verdicts and sizing, by hand."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.gate import ActivationBook, OrderGate, Verdict, verdict


def book_with(active=True, weight=0.4, seq=3, at=0.0) -> ActivationBook:
    b = ActivationBook("w")
    b.apply_event({"strategy_id": "s", "active": active, "weight": weight, "seq": seq}, now=at)
    return b


def test_fails_closed_without_a_known_fresh_activation():
    b = ActivationBook("w")
    assert verdict(b, "s", 0.0, 30.0).kind == "hold"  # never connected
    b.confirm(0.0)
    v = verdict(b, "s", 0.0, 30.0)
    assert v.kind == "hold" and "no activation known" in v.reason
    b = book_with(at=100.0)
    assert verdict(b, "s", 129.0, 30.0).kind == "trade"
    stale = verdict(b, "s", 131.0, 30.0)
    assert stale.kind == "hold" and "31 s old" in stale.reason
    b.confirm(131.0)  # a heartbeat makes it fresh again
    assert verdict(b, "s", 131.5, 30.0) == Verdict("trade", 0.4, "active")
    b.lose("connection reset")
    assert verdict(b, "s", 131.5, 30.0).kind == "hold"


def test_events_apply_in_seq_order_and_snapshots_replace_the_table():
    b = book_with(seq=5)
    b.apply_event({"strategy_id": "s", "active": False, "weight": 0.0, "seq": 5}, now=1.0)
    assert b.get("s").active  # a repeated seq changes nothing
    b.load_snapshot(
        {"seq": 9, "strategies": [{"strategy_id": "t", "active": True, "weight": 1.0}]}, now=2.0
    )
    assert b.get("s") is None and b.get("t").weight == 1.0 and b.seq == 9
    assert verdict(b, "s", 2.0, 30.0).cause == "unlisted"  # known before, not listed now


def test_an_event_below_the_seq_seen_is_a_restarted_world_held_for_good():
    b = book_with(seq=5)
    b.apply_event({"strategy_id": "s", "active": False, "weight": 0.0, "seq": 4}, now=1.0)
    assert b.get("s").active  # not applied
    v = verdict(b, "s", 1.0, 30.0)
    assert (v.kind, v.cause) == ("hold", "world_restarted")
    assert "seq 4 < seq 5 already seen" in v.reason and "rest of the run" in v.reason
    b.load_snapshot(
        {"seq": 9, "strategies": [{"strategy_id": "s", "active": True, "weight": 1.0}]}, now=2.0
    )
    b.confirm(2.0)
    assert verdict(b, "s", 2.0, 30.0).cause == "world_restarted"  # latched


def test_sizing_by_hand_and_orders_only_on_change():
    g = OrderGate("w", "s", capital=100_000.0)
    trade = Verdict("trade", weight=0.25)
    [o] = g.on_bar("AAPL", 10, weight=0.8, close=50.0, v=trade)
    assert (o.target_weight, o.target_qty) == (0.2, 400.0)  # 0.8 x 0.25 x 100k / 50
    assert o.world == "w" and o.strategy_id == "s" and o.ts == 10
    assert g.on_bar("AAPL", 11, 0.8, 55.0, trade) == []  # same target weight: no order
    [o] = g.on_bar("AAPL", 12, 0.8, 40.0, Verdict("trade", weight=0.5))  # world weight moved
    assert o.target_qty == pytest.approx(1000.0)
    assert g.on_bar("AAPL", 13, 0.0, 40.0, Verdict("hold", reason="lost")) == []
    assert g.held == "lost"
    [o] = g.on_bar("AAPL", 14, 0.8, 40.0, Verdict("flatten"))
    assert o.target_qty == 0.0 and o.reason.startswith("deactivated")
    assert g.on_bar("AAPL", 15, 0.8, 40.0, Verdict("flatten")) == []  # flat already
    assert g.on_bar("MSFT", 15, 0.8, 40.0, Verdict("flatten")) == []  # never held


def test_gate_state_survives_a_snapshot():
    g = OrderGate("w", "s", capital=1.0)
    g.on_bar("A", 1, 1.0, 1.0, Verdict("trade", weight=1.0))
    back = pickle.loads(pickle.dumps(copy.deepcopy(g)))
    assert back.on_bar("A", 2, 1.0, 1.0, Verdict("trade", weight=1.0)) == []


def test_short_targets_are_scaled_by_the_world_weight_and_flattened():
    g = OrderGate("w", "s", capital=100_000.0)
    trade = Verdict("trade", weight=0.5)  # the world's weight (>= 0) scales the whole book
    [o] = g.on_bar("AAPL", 1, weight=-0.6, close=50.0, v=trade)
    assert (o.target_weight, o.target_qty) == (-0.3, -600.0)
    [o] = g.on_bar("AAPL", 2, weight=0.4, close=50.0, v=trade)  # short to long: one order
    assert (o.target_weight, o.target_qty) == (0.2, 400.0)
    [o] = g.on_bar("AAPL", 3, weight=-0.4, close=40.0, v=trade)
    assert o.target_qty == pytest.approx(-500.0)
    [o] = g.on_bar("AAPL", 4, weight=-0.4, close=40.0, v=Verdict("flatten"))
    assert o.target_qty == 0.0


def test_the_world_weight_cannot_be_negative():
    from pydantic import ValidationError

    from qmtl.core.contracts import ActivationEvent

    with pytest.raises(ValidationError):
        ActivationEvent(
            world="w",
            seq=1,
            ts=0,
            strategy_id="s",
            active=True,
            weight=-0.5,
            reason="x",
            policy_version=1,
        )


# -- the state machine against a model (hypothesis) ------------------------------------------
SIDS = ("s", "t")
_op = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(SIDS), st.booleans(), st.integers(0, 12)),
    st.tuples(
        st.just("snapshot"),
        st.integers(0, 12),
        st.dictionaries(st.sampled_from(SIDS), st.booleans()),
        st.integers(1, 4),
    ),
    st.tuples(st.just("control"), st.sampled_from(["freeze", "unfreeze"]), st.integers(0, 12)),
    st.tuples(st.just("confirm")),
    st.tuples(st.just("lose")),
    st.tuples(st.just("vanish")),
)


class Model:
    """What the gate must decide, written plainly: the world is gone for good once it
    vanished or a seq (or a snapshot's policy version) went below one seen; otherwise the
    latest activation at the highest seq, held while lost, frozen, unknown or unlisted."""

    def __init__(self) -> None:
        self.seq, self.version, self.gone = 0, 0, None
        self.rows: dict[str, bool] = {}
        self.unlisted: set[str] = set()
        self.lost, self.frozen = True, False
        self.confirmed = False  # heard from the world once (else: still connecting)

    def apply(self, op) -> None:
        kind = op[0]
        if self.gone is not None:
            return
        if kind == "vanish":
            self.gone = "world_gone"
        elif kind == "lose":
            self.lost = True
        elif kind == "confirm":
            self.lost, self.confirmed = False, True
        elif kind == "event":
            _, sid, active, seq = op
            self.lost, self.confirmed = False, True
            if seq < self.seq:
                self.gone = "world_restarted"
            elif seq > self.seq:
                self.rows[sid], self.seq = active, seq
                self.unlisted.discard(sid)
        elif kind == "control":
            _, step, seq = op
            self.lost, self.confirmed = False, True
            if seq < self.seq:
                self.gone = "world_restarted"
            elif seq > self.seq:
                self.frozen, self.seq = step == "freeze", seq
        else:
            _, seq, rows, version = op
            if seq < self.seq or version < self.version:
                self.gone = "world_restarted"
                return
            self.unlisted = (self.unlisted | set(self.rows)) - set(rows)
            self.rows, self.seq, self.version = dict(rows), seq, version
            self.lost, self.frozen, self.confirmed = False, False, True

    def kind(self, sid: str) -> tuple[str, str]:
        if self.gone is not None:
            return "hold", self.gone
        if self.frozen and not self.lost:
            return "hold", "frozen"
        if self.lost:
            return "hold", "lost" if self.confirmed else "connecting"
        if sid not in self.rows:
            return "hold", "unlisted" if sid in self.unlisted else "no_activation"
        return ("trade", "") if self.rows[sid] else ("flatten", "")


def _drive(book: ActivationBook, op) -> None:
    kind = op[0]
    if kind == "vanish":
        book.vanish("GET /worlds/w/activation: 404")
    elif kind == "lose":
        book.lose("reset")
    elif kind == "confirm":
        book.confirm(0.0)
    elif kind == "event":
        _, sid, active, seq = op
        book.apply_event({"strategy_id": sid, "active": active, "weight": 1.0, "seq": seq}, 0.0)
    elif kind == "control":
        _, step, seq = op
        book.control({"seq": seq, "step": step, "plan_id": "p"}, 0.0)
    else:
        _, seq, rows, version = op
        book.load_snapshot(
            {
                "seq": seq,
                "policy_version": version,
                "strategies": [
                    {"strategy_id": k, "active": a, "weight": 1.0} for k, a in rows.items()
                ],
            },
            0.0,
        )


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=25))
def test_the_gate_follows_its_model_and_a_world_once_gone_holds_for_good(ops):
    book, model = ActivationBook("w"), Model()
    for op in ops:
        _drive(book, op)
        model.apply(op)
        for sid in SIDS:
            v = verdict(book, sid, now=0.0, max_age=30.0)
            assert (v.kind, v.cause) == model.kind(sid), (op, sid, v)
            assert v.kind != "hold" or v.reason  # a hold always says why
            if model.gone is not None:
                assert "rest of the run" in v.reason
