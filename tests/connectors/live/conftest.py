"""Fixtures: an order store on each backend (SQLite file, PostgreSQL schema of its own)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.world_api.conftest import backend_url


@pytest.fixture(params=["sqlite", "postgresql"])
def order_store_url(request, tmp_path) -> Iterator[str]:
    yield from backend_url(request.param, tmp_path, "orders.db")


@pytest.fixture
def store(order_store_url):
    from connectors.live.order_store import open_order_store

    s = open_order_store(order_store_url)
    yield s
    s.close()
