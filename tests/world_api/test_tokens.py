"""Bearer tokens as the service keeps them: a public id, an owner, a role, an expiry and
revocation; a salted hash, never the token; the audit actor is the token id; failed
authentications are audited, at a bounded rate; the scheme is matched case-insensitively."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from qmtl.cli import app as cli_app
from world_api.service import tables
from world_api.service.app import create_app
from world_api.service.auth import (
    FailureLimiter,
    authenticate,
    create_token,
    hash_token,
    token_id,
    verify,
)
from world_api.service.store import open_store


def h(token: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}"}


@pytest.fixture
def store(store_url):
    s = open_store(store_url)
    yield s
    s.close()


def stored_rows(store) -> list[dict]:
    with store.transaction() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(tables.tokens)).all()]


def test_a_token_is_stored_as_a_salted_hash_with_a_public_id(store):
    a = create_token(store, "developer", "quant")
    b = create_token(store, "developer", "quant")
    assert re.fullmatch(r"qmtl_[0-9a-f]{8}_[A-Za-z0-9_-]{43}", a)
    rows = {r["id"]: r for r in stored_rows(store)}
    assert set(rows) == {token_id(a), token_id(b)}
    for token in (a, b):
        row = rows[token_id(token)]
        assert token not in str(row) and token.split("_", 2)[2] not in str(row)
        scheme, salt, digest = row["hash"].split("$")
        # an independent reference: SHA-256 of salt + token, by hashlib directly
        assert scheme == "sha256s"
        assert digest == hashlib.sha256(bytes.fromhex(salt) + token.encode()).hexdigest()
        assert (row["owner"], row["role"], row["expires"], row["revoked"]) == (
            "quant", "developer", None, None)
    assert rows[token_id(a)]["hash"].split("$")[1] != rows[token_id(b)]["hash"].split("$")[1]


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=80), st.text(min_size=1, max_size=80))
def test_verify_accepts_the_token_and_nothing_else(token, other):
    stored = hash_token(token)
    assert verify(token, stored)
    assert verify(other, stored) == (other == token)
    assert not verify(token, "md5$" + stored.split("$", 1)[1])  # an unknown scheme never


def test_expired_revoked_and_unknown_tokens_get_a_401_saying_why(store):
    soon = create_token(store, "viewer", "temp", expires=time.time_ns() + 10**9 * 3600)
    gone = create_token(store, "viewer", "leaver")
    ok = create_token(store, "viewer", "stays")
    store.revoke_token(token_id(gone))
    with TestClient(create_app(store)) as c:
        assert c.get("/worlds", headers=h(soon)).status_code == 200
        r = c.get("/worlds", headers=h(gone))
        assert r.status_code == 401
        assert r.json()["detail"].startswith(f"token {token_id(gone)} was revoked at 20")
        wrong_secret = soon[:-4] + ("AAAA" if not soon.endswith("AAAA") else "BBBB")
        r = c.get("/worlds", headers=h(wrong_secret))
        assert r.status_code == 401 and r.json()["detail"] == "unknown token"
        r = c.get("/worlds", headers=h("not-a-qmtl-token"))
        assert r.status_code == 401 and "starts with 'qmtl_'" in r.json()["detail"]
        assert c.get("/worlds", headers=h(ok)).status_code == 200
    later = time.time_ns() + 10**9 * 7200
    with pytest.raises(Exception, match=rf"token {token_id(soon)} expired at 20"):
        authenticate(store, soon, now=later)


def test_a_token_cannot_be_made_already_expired_or_with_an_unknown_role(store):
    with pytest.raises(ValueError, match="not in the future"):
        create_token(store, "viewer", "x", expires=time.time_ns() - 1)
    with pytest.raises(ValueError, match="unknown role 'admin'"):
        create_token(store, "admin", "x")
    assert stored_rows(store) == []


def test_the_bearer_scheme_is_matched_case_insensitively(store):
    """RFC 7235: the auth scheme is case-insensitive; the token itself is not."""
    tok = create_token(store, "viewer", "v")
    with TestClient(create_app(store)) as c:
        for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
            assert c.get("/worlds", headers=h(tok, scheme)).status_code == 200, scheme
        assert c.get("/worlds", headers=h(tok.upper())).status_code == 401
        r = c.get("/worlds", headers=h(tok, "Basic"))
        assert r.status_code == 401 and r.json()["detail"].startswith("missing bearer token")


def test_the_audit_actor_is_the_token_id_with_its_owner_beside_it(store):
    a = create_token(store, "operator", "sam")  # two owners of one name: ids tell them apart
    b = create_token(store, "operator", "sam")
    with TestClient(create_app(store)) as c:
        assert c.post("/worlds", json={"id": "w1"}, headers=h(a)).status_code == 201
        assert c.put("/worlds/w1/policy", content="top_k: 1", headers=h(b)).status_code == 200
        rows = c.get("/worlds/w1/audit", headers=h(a)).json()
        assert [(r["actor"], r["owner"], r["action"]) for r in rows] == [
            (token_id(b), "sam", "put_policy"), (token_id(a), "sam", "create_world")]
        only_b = c.get("/worlds/w1/audit", params={"actor": token_id(b)}, headers=h(a)).json()
        assert [r["action"] for r in only_b] == ["put_policy"]


def test_failed_authentications_are_audited_at_a_bounded_rate(store):
    tok = create_token(store, "viewer", "v")
    app = create_app(store)
    now = [1000.0]
    app.state.auth_failures = FailureLimiter(per_source=5, total=50, clock=lambda: now[0])
    with TestClient(app) as c:
        for i in range(200):  # a flood from one source
            assert c.get("/worlds", headers=h(f"qmtl_guess{i}")).status_code == 401
        assert c.post("/worlds", json={"id": "w"}, headers=h(tok)).status_code == 403
        failed = store.audit_log(None, 1000)
        kinds = [r["action"] for r in failed]
        assert kinds.count("auth_failed") == 5 and "auth_denied" not in kinds  # over the limit
        first = next(r for r in failed if r["action"] == "auth_failed")
        assert first["actor"] == "-" and first["detail"]["source"] == "testclient"
        assert first["detail"]["path"] == "/worlds" and first["detail"]["status"] == 401
        now[0] += 60  # the next minute: recorded again, with how many were dropped
        r = c.post("/worlds", json={"id": "w"}, headers=h(tok))
        assert r.status_code == 403
        denied = store.audit_log(None, 1000, newest_first=True)[0]
        assert (denied["action"], denied["actor"], denied["owner"]) == (
            "auth_denied", token_id(tok), "v")
        assert denied["detail"]["dropped_before"] == 196 and "needs 'operator'" in (
            denied["detail"]["reason"])
        # the service's rows are not a world's: a world's audit log does not show them
        assert c.post("/worlds", json={"id": "w"}, headers=h(create_token(
            store, "operator"))).status_code == 201
        assert [r["action"] for r in store.audit_log("w")] == ["create_world"]


def test_the_limiter_bounds_all_sources_together():
    lim = FailureLimiter(per_source=3, total=10, clock=lambda: 0.0)
    kept = sum(lim.allow(f"10.0.{i // 250}.{i % 250}")[0] for i in range(5000))
    assert kept == 10 and len(lim._counts) == 10  # memory bounded by `total` too


def test_token_commands_create_list_revoke_and_audit(tmp_path):
    db = str(tmp_path / "w.db")
    run = CliRunner()

    def invoke(*args: str):
        return run.invoke(cli_app, ["world", "token", *args, "--store", db])

    made = invoke("create", "--role", "developer", "--owner", "quant", "--expires", "90d")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert re.fullmatch(r"qmtl_[0-9a-f]{8}_\S{43}", token)
    assert f"token id {token_id(token)}" in made.stderr
    old_flag = invoke("create", "--role", "viewer", "--name", "watcher")
    assert old_flag.exit_code == 0
    listed = run.invoke(cli_app, ["world", "token", "list", "--store", db],
                        env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    assert token_id(token) in listed.stdout and "quant" in listed.stdout
    assert "watcher" in listed.stdout and listed.stdout.count("active") == 2
    assert token not in listed.stdout and token.split("_", 2)[2][:10] not in listed.stdout
    assert "sha256" not in listed.stdout
    gone = invoke("revoke", token_id(token))
    assert gone.exit_code == 0 and f"token {token_id(token)} (quant, developer) revoked" in (
        gone.stdout)
    s = open_store(db)
    try:
        with pytest.raises(Exception, match="was revoked"):
            authenticate(s, token)
    finally:
        s.close()
    assert invoke("revoke", "ffffffff").exit_code == 1
    assert "unknown token id 'ffffffff'" in invoke("revoke", "ffffffff").output
    bad = invoke("create", "--role", "viewer", "--expires", "soon")
    assert bad.exit_code == 1 and "use a duration" in bad.output
    audit = run.invoke(cli_app, ["world", "token", "audit", "--store", db],
                       env={"COLUMNS": "250"})
    assert audit.exit_code == 0
    assert audit.stdout.count("token_create") == 2 and "token_revoke" in audit.stdout



@pytest.mark.parametrize("ttl", [0.0, 2.0])
def test_a_revocation_from_the_cli_holds_once_the_servers_token_cache_lets_go(tmp_path, ttl):
    """The running service and the CLI open the store separately: a token that authenticated
    is remembered for ``token_ttl`` seconds (0: not at all), then the store's word holds."""
    import httpx

    from tests.world_api.conftest import serve

    db = str(tmp_path / "w.db")
    store = open_store(db)
    tok = create_token(store, "viewer", "leaver")
    app = create_app(store, token_ttl=ttl)
    now = [0.0]
    app.state.service.tokens.clock = lambda: now[0]
    with serve(app) as url:
        assert httpx.get(f"{url}/worlds", headers=h(tok)).status_code == 200
        out = CliRunner().invoke(cli_app, ["world", "token", "revoke", token_id(tok),
                                           "--store", db])
        assert out.exit_code == 0, out.output
        if ttl:
            assert httpx.get(f"{url}/worlds", headers=h(tok)).status_code == 200  # cached
            now[0] += ttl
        r = httpx.get(f"{url}/worlds", headers=h(tok))
        assert r.status_code == 401 and "was revoked" in r.json()["detail"]
    store.close()
