"""Strategy ids that can be managed, over HTTP against the real app (uvicorn), on SQLite and
PostgreSQL: the id alphabet is enforced when a strategy is created (422), ids are NFC and
invisible or bidirectional characters are refused; ids stored before the rule are logged on
start and stay manageable through the ``?id=`` routes, also from the CLI; a JSON body or a
policy file with a repeated key is refused."""

from __future__ import annotations

import logging
from urllib.parse import unquote

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from qmtl.cli import app as cli
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.client import InvalidRequestError, WorldServiceClient, strategy_path
from world_api.domain.ids import PUNCTUATION, check_new, valid
from world_api.service import tables
from world_api.service.app import create_app
from world_api.service.store import WorldInfo, open_store

DAY = 86_400 * 10**9


def update(sid: str, seq: int = 1, sharpe: float = 1.0) -> MetricsUpdate:
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id="r",
        seq=seq,
        mode="backtest",
        as_of=seq * DAY,
        n_bars=100 + seq,
        metrics={"sharpe": sharpe},
        returns=[(seq * DAY, 0.001)],
    )


@pytest.fixture
def served(store_url):
    store = open_store(store_url)
    with serve(create_app(store, insecure_dev=True)) as url, WorldServiceClient(url) as api:
        api.create_world("w")
        yield url, api, store
    store.close()


def test_ids_outside_the_alphabet_are_refused_at_creation(served):
    _url, api, _ = served
    for sid, what in [
        ("evil/slash", "'/' (U+002F) at 4"),
        ("a?b", "'?' (U+003F) at 1"),
        ("a b", "' ' (U+0020) at 1"),
        ("zero\u200bwidth", "(U+200B) at 4"),
        ("abc\u202edef", "(U+202E) at 3"),
        ("..", "only dots"),
    ]:
        with pytest.raises(InvalidRequestError) as err:
            api.post_metrics("w", [update(sid)])
        assert err.value.status == 422 and what in str(err.value), str(err.value)
    assert api.strategies("w") == []
    api.post_metrics("w", [update("SmaCross-fast=20,slow=100"), update("ns:momo+3.v_2")])
    assert {s["strategy_id"] for s in api.strategies("w")} == {
        "SmaCross-fast=20,slow=100",
        "ns:momo+3.v_2",
    }


def test_look_alike_ids_are_one_strategy(served):
    url, api, _ = served
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    api.post_metrics("w", [update(composed, 1)])
    api.post_metrics("w", [update(decomposed, 2, sharpe=2.0)])
    assert [s["strategy_id"] for s in api.strategies("w")] == [composed]
    # looked up by either spelling, in the path and by ?id=
    assert api.strategy("w", decomposed)["metrics"]["sharpe"] == 2.0
    r = httpx.get(f"{url}/worlds/w/strategy", params={"id": decomposed})
    assert r.status_code == 200 and r.json()["strategy_id"] == composed


def _legacy(store, sids: list[str]) -> None:
    """Store strategies as an older version did, whatever their ids (and as migration 0007
    leaves them: operator-owned)."""
    engine = store.load_engine("w")
    changes = []
    for sid in sids:
        changes += engine.ingest(update(sid))
    store.commit("w", engine, changes)
    with store.transaction() as conn:
        conn.execute(
            sa.insert(tables.strategy_owners),
            [{"world": "w", "strategy_id": s, "owner": None, "since": 1} for s in sids],
        )


def test_ids_stored_before_the_alphabet_stay_manageable(store_url, caplog):
    store = open_store(store_url)
    store.create_world(WorldInfo(id="w"))
    _legacy(store, ["evil/slash", "a?b"])
    with caplog.at_level(logging.WARNING, logger="qmtl.world"):
        app = create_app(store, insecure_dev=True)
    logged = [r.getMessage() for r in caplog.records if "outside the id alphabet" in r.message]
    assert len(logged) == 2 and "'evil/slash'" in logged[1] and "'a?b'" in logged[0]
    try:
        with serve(app) as url, WorldServiceClient(url) as api:
            # today: /worlds/w/strategies/evil%2Fslash is 404; ?id= reads it
            assert httpx.get(f"{url}/worlds/w/strategies/evil%2Fslash").status_code == 404
            r = httpx.get(f"{url}/worlds/w/strategy", params={"id": "evil/slash"})
            assert r.status_code == 200 and r.json()["strategy_id"] == "evil/slash"
            for sid in ("evil/slash", "a?b"):
                assert api.strategy("w", sid)["strategy_id"] == sid
                out = api.put_override("w", sid, "inactive", "legacy id")
                assert out["override"]["strategy_id"] == sid
                assert api.owner("w", sid)["operator_owned"] is True
                assert api.transfer_owner("w", sid, "alice")["owner"] == "alice"
                api.clear_override("w", sid)
                assert api.strategy_returns("w", sid)["strategy_id"] == sid
            assert api.overrides("w") == []
            # the CLI encodes the id (today: PUT /worlds/w/strategies/a?b/override was 405)
            for sid in ("a?b", "evil/slash"):
                res = CliRunner().invoke(
                    cli,
                    [
                        "world",
                        "override",
                        "w",
                        sid,
                        "--state",
                        "inactive",
                        "--reason",
                        "x",
                        "--url",
                        url,
                    ],
                    env={"COLUMNS": "200"},
                )
                assert res.exit_code == 0, res.output
                assert f"{sid!r} forced inactive" in res.output
            assert sorted(o["strategy_id"] for o in api.overrides("w")) == ["a?b", "evil/slash"]
            # an update to a stored strategy is still taken, whatever its id
            assert api.post_metrics("w", [update("a?b", 2)])["accepted"] == 1
    finally:
        store.close()


def test_repeated_keys_in_a_body_or_a_policy_are_refused(served, tmp_path):
    url, api, _ = served
    body = update("s").model_dump_json().replace('"seq":1', '"seq":1,"seq":2')
    r = httpx.post(
        f"{url}/worlds/w/metrics", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "duplicate key 'seq'" in r.json()["detail"]
    r = httpx.post(
        f"{url}/worlds",
        content='{"id": "x", "id": "y"}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422 and "duplicate key 'id'" in r.json()["detail"]
    r = httpx.put(f"{url}/worlds/w/policy", content="top_k: 1\ntop_k: 50\n")
    assert r.status_code == 422 and "duplicate key 'top_k' at line 2" in r.json()["detail"]
    r = httpx.put(
        f"{url}/worlds/w/policy", content='{"gates": {"sharpe": ">= 1", "sharpe": ">= 0"}}'
    )
    assert r.status_code == 422 and "duplicate key 'sharpe'" in r.json()["detail"]
    assert api.policy("w")["version"] == 1  # nothing stored
    f = tmp_path / "p.yaml"
    f.write_text("gates:\n  sharpe: '>= 1'\n  sharpe: '>= 0'\n")
    res = CliRunner().invoke(
        cli, ["world", "policy", "w", str(f), "--url", url], env={"COLUMNS": "200"}
    )
    assert res.exit_code == 1 and "duplicate key 'sharpe' at line 3" in res.output


@given(st.text(max_size=30))
def test_a_valid_id_round_trips_through_the_path(sid):
    """Any id the alphabet takes is NFC, fixed under check_new, and one path segment."""
    if not valid(sid):
        return
    assert check_new(sid) == sid
    path, params = strategy_path("w", sid)
    assert params == {} and path.count("/") == 4
    assert unquote(path.rsplit("/", 1)[1]) == sid
    assert all(c in PUNCTUATION or not c.isascii() or c.isalnum() for c in sid)
