"""Runner leases (world_api/service/runner_store.py) under random heartbeats of three
runners (hypothesis): a strategy is never granted to a second runner while the first one's
lease is still running and not given back; a runner given back a lease while it still runs
the strategy keeps others off it; runners alive share the wanted strategies within one of
each other once they settle; a runner alone ends up holding everything."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from world_api.service.store import WorldInfo, open_store

TTL = 10
SIDS = ["a", "b", "c", "d", "e"]

beat = st.tuples(
    st.sampled_from(["r0", "r1", "r2"]),
    st.integers(1, 6),  # time step before it
    st.lists(st.sampled_from(SIDS), unique=True),  # wanted
    st.booleans(),  # whether it reports the runs it still has as running
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(beat, min_size=1, max_size=40))
def test_no_strategy_is_granted_to_two_runners_at_once(tmp_path_factory, beats):
    store = open_store(str(tmp_path_factory.mktemp("leases") / "w.db"))
    store.create_world(WorldInfo(id="w"))
    now = 0
    holds: dict[str, tuple[str, int]] = {}  # sid -> (runner, until): what the model allows
    runs: dict[str, set[str]] = {"r0": set(), "r1": set(), "r2": set()}
    for runner, dt, want, reports in beats:
        now += dt
        running = sorted(runs[runner]) if reports else []
        got = store.heartbeat("w", runner, want, {}, TTL, now=now, running=running)
        assert got == sorted(got) and set(got) <= set(want)
        for sid in got:
            holder = holds.get(sid)
            if holder is not None and holder[0] != runner:
                assert holder[1] <= now, f"{sid} granted to {runner} while {holder} holds it"
        # the runner's view after this heartbeat: it runs what it got; what it still runs
        # without a lease keeps its lease (not renewed) until a heartbeat drops it
        mine = {s for s, (r, _) in holds.items() if r == runner}
        for sid in mine - set(got):
            if sid not in running:
                holds.pop(sid)
        for sid in got:
            holds[sid] = (runner, now + TTL)
        runs[runner] = set(got)
    store.close()


def test_runners_settle_on_fair_shares_and_one_takes_all(tmp_path):
    store = open_store(str(tmp_path / "w.db"))
    store.create_world(WorldInfo(id="w"))
    got: dict[str, list[str]] = {}
    now = 0
    for _ in range(4):  # a few rounds of heartbeats
        for r in ("r0", "r1", "r2"):
            now += 1
            got[r] = store.heartbeat("w", r, SIDS, {}, TTL, now=now)
    sizes = sorted(len(v) for v in got.values())
    assert sum(sizes) == len(SIDS) and sizes[-1] <= math.ceil(len(SIDS) / 3)
    assert sorted(s for v in got.values() for s in v) == SIDS
    # r1 and r2 stop; after their leases expire r0 takes everything
    now += TTL + 1
    assert store.heartbeat("w", "r0", SIDS, {}, TTL, now=now) == SIDS
    store.close()
