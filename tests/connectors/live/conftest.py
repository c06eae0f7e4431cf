"""Fixtures: an order store on each backend (SQLite file, PostgreSQL schema of its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.world_api.conftest import PG_URL, _ensure_pg


@pytest.fixture(params=["sqlite", "postgresql"])
def order_store_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "orders.db")
        return
    why = _ensure_pg()
    if why:
        pytest.skip(why)
    schema = f"qmtl_orders_{uuid.uuid4().hex[:10]}"
    yield f"{PG_URL}?schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def store(order_store_url):
    from connectors.live.order_store import open_order_store

    s = open_order_store(order_store_url)
    yield s
    s.close()
