"""Property tests of ``POST /worlds/{id}/metrics`` on both stores (in process): updates
and batches with random, extreme, non-finite and nested values are answered 2xx or 4xx,
never 5xx; after a 4xx everything a client reads of the world is byte-identical to before
(a batch with one bad update stores none of it); after a 2xx every update was counted once,
as accepted or as a duplicate, and posting the same body again only finds duplicates."""

from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.world_api.hardening import assert_refused_cleanly, dumps, snapshot, world_client

__all__ = ["world_client"]  # the fixture, used by name

EXAMPLES = int(os.environ.get("QMTL_PROPERTY_EXAMPLES", "20"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
SEQ = itertools.count(10)  # fresh seqs, so that plausible updates are mostly accepted
STORED: dict[int, set[tuple]] = {}
"""The idempotency keys each world (by its client's id) has acknowledged."""


def fresh(client, updates: list[dict]) -> int:
    """How many distinct keys of ``updates`` the world has not acknowledged yet; notes them
    as acknowledged (call it after a 2xx)."""
    stored = STORED.setdefault(id(client), {("s1", "r1", 1), ("s2", "r1", 1)})  # the seeds
    keys = {(u["strategy_id"], u.get("run_id", "r1"), u["seq"]) for u in updates}
    new = keys - stored
    stored |= keys
    return len(new)

INTS = st.one_of(st.integers(min_value=0, max_value=10**6),
                 st.sampled_from([-1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30]))
FLOATS = st.one_of(st.floats(min_value=-10, max_value=10), st.floats(),
                   st.sampled_from([1e308, -1e308, 5e-324]))
JUNK = st.recursive(st.none() | st.booleans() | st.text(max_size=5) | FLOATS | INTS,
                    lambda x: st.lists(x, max_size=3) | st.dictionaries(st.text(max_size=3), x,
                                                                         max_size=3),
                    max_leaves=10)
IDS = st.sampled_from(["s1", "s2", "s3", "", "s\x00", "x" * 201, "é", "s\n"])


@st.composite
def updates(draw) -> dict:
    """A MetricsUpdate as JSON: plausible, with some fields hostile now and then."""
    seq = next(SEQ)
    u = {"world": "w1", "strategy_id": draw(IDS.filter(lambda s: s) if draw(st.booleans())
                                            else st.sampled_from(["s1", "s2", "s3"])),
         "run_id": "r1", "seq": seq, "mode": "backtest", "as_of": seq, "n_bars": 300,
         "metrics": {"sharpe": draw(FLOATS), "max_drawdown": 0.1}}
    base_ts = seq * 1000
    n = draw(st.integers(0, 5))
    u["returns"] = [[base_ts + i * draw(st.sampled_from([1, 1, 1, 0, -1])),
                     draw(st.floats(-0.05, 0.05) | FLOATS)] for i in range(n)]
    for field in draw(st.lists(st.sampled_from(
            ["seq", "as_of", "n_bars", "metrics", "returns", "mode", "world", "run_id",
             "extra", "fingerprint", "ts_huge", "drop"]), max_size=2, unique=True)):
        if field in ("seq", "as_of", "n_bars"):
            u[field] = draw(INTS | JUNK)
        elif field == "metrics":
            u[field] = draw(st.dictionaries(st.text(max_size=6), FLOATS | JUNK, max_size=3))
        elif field == "returns":
            u[field] = draw(JUNK)
        elif field == "ts_huge":
            u["returns"] = [[draw(INTS), 0.01]]
        elif field == "drop":
            u.pop(draw(st.sampled_from(sorted(u))))
        else:
            u[field] = draw(JUNK | IDS)
    return u


def post(client, body: str, before) -> dict | None:
    r = client.post("/worlds/w1/metrics", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert_refused_cleanly(client, r, before)
        return None
    return r.json()


@PROPS
@given(updates())
def test_one_update(world_client, u):
    before = snapshot(world_client)
    body = dumps(u)
    answer = post(world_client, body, before)
    if answer is not None:
        new = fresh(world_client, [u])
        assert (answer["accepted"], answer["duplicates"]) == (new, 1 - new)
        again = post(world_client, body, snapshot(world_client))
        assert again is not None and (again["accepted"], again["duplicates"]) == (0, 1)


@PROPS
@given(st.lists(updates(), min_size=1, max_size=5))
def test_a_batch_is_stored_whole_or_not_at_all(world_client, batch):
    before = snapshot(world_client)
    answer = post(world_client, dumps(batch), before)
    if answer is not None:
        assert answer["accepted"] + answer["duplicates"] == len(batch)
        assert answer["accepted"] == fresh(world_client, batch)


@PROPS
@given(JUNK | st.binary(max_size=200))
def test_anything_else(world_client, junk):
    before = snapshot(world_client)
    body = junk if isinstance(junk, bytes) else dumps(junk)
    post(world_client, body, before)


def test_the_world_still_takes_a_good_update(world_client):
    seq = next(SEQ)
    u = {"world": "w1", "strategy_id": "s1", "run_id": "r1", "seq": seq, "mode": "backtest",
         "as_of": seq, "n_bars": 300, "metrics": {"sharpe": 1.0}, "returns": []}
    assert world_client.post("/worlds/w1/metrics", json=u).json()["accepted"] == 1
    again = world_client.post("/worlds/w1/metrics", json=u).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)
