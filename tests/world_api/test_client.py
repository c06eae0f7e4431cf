"""The one WorldService client against a real uvicorn server: errors by status, and the
event stream (httpx-sse) with resume, follow, keep-alives and interrupt."""

from __future__ import annotations

import threading

import pytest

from qmtl.core.contracts import ActivationEvent, MetricsUpdate
from qmtl.core.errors import QmtlError
from tests.world_api.conftest import TcpProxy, free_port, serve
from tests.world_api.service.conftest import update
from world_api.client import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    KeepAlive,
    NotFoundError,
    UnauthorizedError,
    UnavailableError,
    WorldServiceClient,
    WorldServiceError,
)
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store


def updates(*items: tuple[str, int, float]) -> list[MetricsUpdate]:
    return [MetricsUpdate.model_validate(update(sid, seq, sharpe)) for sid, seq, sharpe in items]


@pytest.fixture
def world(tmp_path):
    """A served world 'w1' (top_k 3) and an operator and a viewer token."""
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    viewer = create_token(store, "viewer", "watcher")
    app = create_app(store)
    with serve(app) as url, WorldServiceClient(url, op) as client:
        client.create_world("w1", capital=1e6)
        client.put_policy("w1", "top_k: 3")
        yield url, op, viewer
    store.close()


def test_errors_are_typed_by_status(world):
    url, op, viewer = world
    with (WorldServiceClient(url) as anonymous, WorldServiceClient(url, "qmtl_nope") as stranger,
          WorldServiceClient(url, viewer) as v, WorldServiceClient(url, op) as o):
        cases = [
            (lambda: anonymous.list_worlds(), UnauthorizedError, 401, "missing bearer"),
            (lambda: stranger.world("w1"), UnauthorizedError, 401, "unknown token"),
            (lambda: v.create_world("w2"), ForbiddenError, 403, "needs 'operator'"),
            (lambda: o.world("nope"), NotFoundError, 404, "unknown world 'nope'"),
            (lambda: o.strategy("w1", "ghost"), NotFoundError, 404, "has not reported"),
            (lambda: o.policy("w1", version=9), NotFoundError, 404, "version"),
            (lambda: o.create_world("w1"), ConflictError, 409, "already exists"),
            (lambda: o.put_policy("w1", "top_k: -1"), InvalidRequestError, 422, "top_k"),
            (lambda: o.post_metrics("w1", "x" * (2 << 20)), InvalidRequestError, 413,
             "exceeds the limit"),
        ]
        for call, cls, status, text in cases:
            with pytest.raises(cls) as caught:
                call()
            exc = caught.value
            assert isinstance(exc, WorldServiceError) and isinstance(exc, QmtlError)
            assert exc.status == status and text in exc.detail, exc
            assert f": {status}: " in str(exc)  # "METHOD /path: status: detail"
        assert isinstance(caught.value, ValueError)  # 413/422 refine ValueError
        # a stale seq is a conflict
        o.post_metrics("w1", updates(("a", 5, 1.0)))
        with pytest.raises(ConflictError, match="not after the last seen seq 5"):
            o.post_metrics("w1", updates(("a", 3, 1.0)))


def test_unreachable_service_is_unavailable():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with WorldServiceClient(url, timeout=5) as client:
        with pytest.raises(UnavailableError, match="cannot reach the world service") as caught:
            client.world("w1")
        assert caught.value.status is None and isinstance(caught.value, ConnectionError)
        with pytest.raises(UnavailableError):
            client.events("w1").__enter__()


def test_store_outage_is_unavailable_503(pg_store_url):
    proxy = TcpProxy(("127.0.0.1", 5432))
    app = create_app(pg_store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"),
                     insecure_dev=True)
    try:
        with serve(app) as url, WorldServiceClient(url) as client:
            client.create_world("w1")
            proxy.cut()
            with pytest.raises(UnavailableError) as caught:
                client.post_metrics("w1", updates(("a", 1, 1.0)))
            assert caught.value.status == 503 and "nothing was written" in caught.value.detail
    finally:
        proxy.cut()
        app.state.service.store.close()


def test_event_stream_resumes_by_last_event_id_and_after(world):
    url, op, _ = world
    with WorldServiceClient(url, op) as client:
        client.post_metrics("w1", updates(("a", 1, 1.0), ("b", 1, 2.0), ("c", 1, 3.0)))
        full = client.event_list("w1")
        assert [e.seq for e in full] == list(range(1, len(full) + 1)) and len(full) >= 3
        assert all(isinstance(e, ActivationEvent) and e.world == "w1" for e in full)
        # a reader that saw the first two resumes with Last-Event-ID, or with ?after=
        assert client.event_list("w1", last_event_id=full[1].seq) == full[2:]
        assert client.event_list("w1", after=full[0].seq) == full[1:]
        assert client.event_list("w1", after=full[-1].seq) == []
        # the stream agrees with the snapshot
        snap = client.activation("w1")
        assert snap["seq"] == full[-1].seq
        active = {e.strategy_id: e.weight for e in full if e.active}
        assert {r["strategy_id"]: r["weight"] for r in snap["strategies"] if r["active"]} == active


def test_follow_sees_new_events_keep_alives_and_stops_on_interrupt(world):
    url, op, viewer = world
    got: list[object] = []
    failure: list[BaseException] = []
    opened = threading.Event()
    with WorldServiceClient(url, viewer) as watcher:
        stream = watcher.events("w1", follow=True, heartbeat=0.1, read_timeout=60)

        def follow() -> None:
            try:
                with stream:
                    opened.set()
                    for event in stream:
                        got.append(event)
            except UnavailableError as exc:
                failure.append(exc)

        reader = threading.Thread(target=follow, daemon=True)
        reader.start()
        assert opened.wait(30)
        with WorldServiceClient(url, op) as writer:
            written = writer.post_metrics("w1", updates(("a", 1, 1.5)))["events"]
        assert written
        deadline = threading.Event()
        for _ in range(600):  # until the event and a keep-alive after it have arrived
            seen = [e for e in got if isinstance(e, ActivationEvent)]
            if seen and isinstance(got[-1], KeepAlive):
                break
            deadline.wait(0.05)
        seen = [e for e in got if isinstance(e, ActivationEvent)]
        assert [e.model_dump() for e in seen] == written
        assert stream.last_seq == written[-1]["seq"]
        assert any(isinstance(e, KeepAlive) for e in got)
        stream.interrupt()  # a reader blocked on the socket wakes up
        reader.join(30)
        assert not reader.is_alive()
