"""The book's event store on both backends (a SQLite file, a PostgreSQL schema of its own):
events kept in order per world, read after an id, folded into the same ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qmtl.book.ledger import request_event
from qmtl.book.model import OrderRequest
from qmtl.book_run.store import open_book_store
from tests.world_api.conftest import backend_url


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> Iterator[str]:
    yield from backend_url(request.param, tmp_path, "book.db")


def test_events_in_order_per_world_and_the_same_ledger_again(url: str) -> None:
    s = open_book_store(url)
    try:
        ids = s.append(
            "w",
            [
                {"kind": "adopt", "cash": 100.0, "positions": {}},
                request_event(OrderRequest("c", "X", 2.0, 10.0)),
            ],
        )
        s.append("other", [{"kind": "state", "state": "HALTED", "reason": "x", "who": "me"}])
        s.append(
            "w",
            [
                {
                    "kind": "fill",
                    "client_id": "c",
                    "trade_id": "t",
                    "qty": 2.0,
                    "price": 10.0,
                    "fee": 0.1,
                }
            ],
        )
        assert [e["kind"] for e in s.events("w")] == ["adopt", "order", "fill"]
        assert [e["kind"] for e in s.events("w", after=ids[1])] == ["fill"]
        assert s.worlds() == ["other", "w"]
        led = s.load("w")
        assert (led.positions, round(led.cash, 6), led.state) == ({"X": 2.0}, 79.9, "ACTIVE")
        assert s.load("other").state == "HALTED"
        assert s.append("w", []) == []
    finally:
        s.close()
    again = open_book_store(url)  # reopened: migrated already, the same events
    try:
        assert len(again.events("w")) == 3
    finally:
        again.close()
