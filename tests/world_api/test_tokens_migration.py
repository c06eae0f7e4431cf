"""Tokens handed out by an older store (``qmtl_<secret>``, kept as their unsalted SHA-256,
keyed by it) keep working after the store is opened by this version: on SQLite and
PostgreSQL, from a store made before migrations and from one at revision 0002. Their row
gets an id (the digest's first 8 hex digits) and their hash is salted on first use."""

from __future__ import annotations

import hashlib
import secrets

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.db_versions import write_v0
from tests.world_api.service.test_store_migrations import V0_DDL
from world_api.service import tables
from world_api.service.app import create_app
from world_api.service.auth import authenticate, create_token, token_id
from world_api.service.store import VERSION_TABLE, open_store

TOKEN_ROW = "INSERT INTO tokens (hash, role, name, created) VALUES (?, ?, ?, ?)"


def old_token() -> tuple[str, str]:
    """A token as the old ``create_token`` made it, and the hash the old store kept."""
    token = "qmtl_" + secrets.token_urlsafe(32)
    return token, hashlib.sha256(token.encode()).hexdigest()


def hashes(store) -> dict[str, str]:
    with store.transaction() as conn:
        return dict(conn.execute(sa.select(tables.tokens.c.id, tables.tokens.c.hash)).all())


@pytest.mark.parametrize("version", ["before migrations", "0002"])
def test_old_tokens_work_after_the_upgrade_and_are_salted_on_first_use(store_url, version):
    op, op_hash = old_token()
    viewer, viewer_hash = old_token()
    ddl = V0_DDL if version == "before migrations" else [
        *[d for d in V0_DDL if "schema_version" not in d],
        f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"]
    rows = [(TOKEN_ROW, [op_hash, "operator", "ops", 11]),
            (TOKEN_ROW, [viewer_hash, "viewer", "watcher", 12])]
    if version == "0002":
        rows.append((f"INSERT INTO {VERSION_TABLE} (version_num) VALUES (?)", ["0002"]))
    write_v0(store_url, ddl, rows)
    store = open_store(store_url)
    try:
        assert token_id(op) == op_hash[:8]
        assert hashes(store) == {op_hash[:8]: f"sha256${op_hash}",
                                 viewer_hash[:8]: f"sha256${viewer_hash}"}
        assert {(t.id, t.owner, t.role, t.created) for t in store.list_tokens()} == {
            (op_hash[:8], "ops", "operator", 11), (viewer_hash[:8], "watcher", "viewer", 12)}
        with TestClient(create_app(store)) as c:
            r = c.post("/worlds", json={"id": "w1"}, headers={"Authorization": f"Bearer {op}"})
            assert r.status_code == 201, r.text
            salted = hashes(store)[op_hash[:8]]
            assert salted.startswith("sha256s$") and op_hash not in salted
            assert hashes(store)[viewer_hash[:8]] == f"sha256${viewer_hash}"  # not used yet
            again = c.get("/worlds", headers={"Authorization": f"Bearer {op}"})
            assert again.status_code == 200  # found by its id, checked against the salted hash
            audit = c.get("/worlds/w1/audit", headers={"Authorization": f"Bearer {viewer}"})
            assert [(a["actor"], a["owner"]) for a in audit.json()] == [(op_hash[:8], "ops")]
            assert hashes(store)[viewer_hash[:8]].startswith("sha256s$")
            wrong = c.get("/worlds", headers={"Authorization": f"Bearer {op}x"})
            assert wrong.status_code == 401
    finally:
        store.close()


def test_an_old_token_whose_id_was_lengthened_is_still_found(store_url):
    """Two old hashes sharing their first 8 hex digits get longer ids in the migration
    (``legacy_ids``); the token is then found under the longer one."""
    token, digest = old_token()
    store = open_store(store_url)
    try:
        with store.transaction() as conn:
            conn.execute(sa.insert(tables.tokens).values(
                id=digest[:9], owner="ops", role="operator", hash=f"sha256${digest}",
                created=1))
            conn.execute(sa.insert(tables.tokens).values(
                id=digest[:8] + "z", owner="other", role="viewer", hash="sha256$00", created=2))
        info = authenticate(store, token)
        assert (info.id, info.owner) == (digest[:9], "ops")
    finally:
        store.close()


def test_the_migration_goes_back_with_the_old_tokens(store_url):
    """A downgrade to 0002 keeps the tokens whose hash the old code can find (the unsalted
    ones) and drops the salted ones, which it could never match."""
    from alembic import command
    from alembic.config import Config

    from qmtl.core.db import _MIGRATING
    from world_api.service.store import MIGRATIONS

    _, old_hash = old_token()
    write_v0(store_url, V0_DDL, [(TOKEN_ROW, [old_hash, "viewer", "watcher", 12])])
    store = open_store(store_url)
    try:
        new = create_token(store, "operator", "ops")
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with _MIGRATING, store.transaction() as conn:
            config.attributes["connection"] = conn
            config.attributes["version_table"] = VERSION_TABLE
            command.downgrade(config, "0002")
        with store.transaction() as conn:
            rows = conn.execute(sa.text("SELECT hash, role, name, created FROM tokens")).all()
        assert [tuple(r) for r in rows] == [(old_hash, "viewer", "watcher", 12)]
        assert new  # made, then dropped by the downgrade
    finally:
        store.close()
