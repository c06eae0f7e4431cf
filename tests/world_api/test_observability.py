"""/metrics, /healthz, /readyz and the JSON access log: counters scraped after known traffic
move by exactly the traffic's amounts (parsed with prometheus_client's own parser)."""

from __future__ import annotations

import io
import json
import logging
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.world_api.conftest import PG_URL, TcpProxy, serve
from tests.world_api.service.conftest import POLICY_YAML, update
from world_api.service.app import create_app
from world_api.service.observability import JsonFormatter
from world_api.service.store import open_store


def scrape(c, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of one ``GET /metrics``."""
    r = c.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(r.text) for s in fam.samples}


def val(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def client(store_url):
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        assert c.put("/worlds/w1/policy", content=POLICY_YAML).status_code == 200
        yield c
    app.state.service.store.close()


def test_counters_move_by_exactly_the_traffic(client):
    before = scrape(client)
    # 3 fresh updates: a and c pass the gate, b does not; then 1 duplicate + 1 fresh
    r1 = client.post("/worlds/w1/metrics", json=[update("a", 1, 1.2), update("b", 1, 0.1),
                                                 update("c", 1, 0.9)])
    r2 = client.post("/worlds/w1/metrics", json=[update("a", 1, 1.2), update("a", 2, 1.3)])
    assert r1.status_code == r2.status_code == 200
    events = r1.json()["events"] + r2.json()["events"]
    on = sum(e["active"] for e in events)
    assert on >= 2  # a and c were activated
    # refused: a stale batch of 2, a body for another world (1), an invalid body
    assert client.post("/worlds/w1/metrics",
                       json=[update("b", 5, 0.1), update("b", 0, 0.1)]).status_code == 409
    assert client.post("/worlds/w1/metrics", json=update("a", 9, world="w2")).status_code == 422
    assert client.post("/worlds/w1/metrics", content=b"{nope").status_code == 422
    for _ in range(3):
        assert client.get("/worlds/w1").status_code == 200
    assert client.get("/worlds/nope").status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return val(after, name, **labels) - val(before, name, **labels)

    assert moved("qmtl_world_updates_ingested_total", world="w1") == 4
    assert moved("qmtl_world_updates_duplicate_total", world="w1") == 1
    assert moved("qmtl_world_updates_rejected_total", world="w1", reason="stale") == 2
    assert moved("qmtl_world_updates_rejected_total", world="w1", reason="wrong_world") == 1
    assert moved("qmtl_world_updates_rejected_total", world="w1", reason="invalid") == 1
    assert moved("qmtl_world_decisions_total", world="w1", active="true") == on
    assert moved("qmtl_world_decisions_total", world="w1", active="false") == len(events) - on
    # two ingests were written (the stale batch failed before the store; the rest never came)
    assert moved("qmtl_world_store_write_seconds_count") == 2
    assert moved("qmtl_world_request_seconds_count", method="GET", route="/worlds/{world}",
                 status="200") == 3
    assert moved("qmtl_world_request_seconds_count", method="GET", route="/worlds/{world}",
                 status="404") == 1
    assert moved("qmtl_world_request_seconds_count", method="POST",
                 route="/worlds/{world}/metrics", status="422") == 2
    assert moved("qmtl_world_request_seconds_count", method="GET", route="unmatched",
                 status="404") == 1
    # the first scrape itself is timed and counted by the second
    assert moved("qmtl_world_request_seconds_count", method="GET", route="/metrics",
                 status="200") == 1
    # a histogram's +Inf bucket is its count
    assert val(after, "qmtl_world_store_write_seconds_bucket", le="+Inf") == val(
        after, "qmtl_world_store_write_seconds_count")


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_readyz_is_503_while_postgresql_is_unreachable(tmp_path):
    from tests.world_api.conftest import _ensure_pg

    if _ensure_pg():
        pytest.skip("PostgreSQL not reachable")
    proxy = TcpProxy(("127.0.0.1", 5432))
    url = PG_URL.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    app = create_app(f"{url}?schema=qmtl_test_readyz_{int(time.time() * 1e6)}",
                     insecure_dev=True)
    schema = app.state.service.store.db.schema
    try:
        with TestClient(app) as c:
            assert c.get("/readyz").status_code == 200
            proxy.cut()
            down = c.get("/readyz")
            assert down.status_code == 503, down.text
            assert "store not reachable" in down.json()["detail"]
            assert c.get("/healthz").status_code == 200  # the process is still up
            proxy.restore()
            assert c.get("/readyz").status_code == 200
    finally:
        proxy.cut()
        app.state.service.store.close()
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_readyz_with_a_store_at_a_wrong_port(tmp_path):
    """A PostgreSQL that is not there at all: the store's engine points at a closed port."""
    from world_api.service.store import StoreUnavailable

    with pytest.raises(StoreUnavailable):
        open_store("postgresql://postgres@127.0.0.1:1/test")
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    store = app.state.service.store
    from qmtl.core.db import Database

    store.db = Database("postgresql://postgres@127.0.0.1:1/test",
                        unavailable=StoreUnavailable, what="world store")
    with TestClient(app) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and "127.0.0.1:1/test" in r.json()["detail"]


def test_metrics_token(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True, metrics_token="s3cret")
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert scrape(c, Authorization="Bearer s3cret")
        assert c.get("/healthz").status_code == 200  # health stays public


def test_sse_clients_gauge_follows_open_streams(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    with serve(app) as url, httpx.Client(base_url=url) as http:
        assert http.post("/worlds", json={"id": "w1"}).status_code == 201
        opened = threading.Event()
        stop = threading.Event()

        def listen() -> None:
            with httpx.Client(base_url=url, timeout=10) as own, own.stream(
                    "GET", "/worlds/w1/events", params={"heartbeat": 0.1}) as r:
                for _ in r.iter_lines():
                    opened.set()
                    if stop.is_set():
                        return

        threads = [threading.Thread(target=listen) for _ in range(2)]
        for th in threads:
            th.start()
        assert opened.wait(10)
        gauge = 0.0
        for _ in range(100):
            gauge = val(scrape(http), "qmtl_world_sse_clients")
            if gauge == 2:
                break
            time.sleep(0.05)
        assert gauge == 2
        stop.set()
        for th in threads:
            th.join(10)
        for _ in range(100):
            gauge = val(scrape(http), "qmtl_world_sse_clients")
            if gauge == 0:
                break
            time.sleep(0.05)
        assert gauge == 0


def test_json_access_log_carries_the_request_id(tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("qmtl.world.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        with TestClient(app) as c:
            c.post("/worlds", json={"id": "w1"})
            r = c.get("/worlds/w1", headers={"X-Request-ID": "trace-42"})
            fresh = c.get("/worlds/zz")
    finally:
        access.removeHandler(handler)
        access.setLevel(logging.WARNING)
    assert r.headers["x-request-id"] == "trace-42"
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    mine = [x for x in lines if x.get("request_id") == "trace-42"]
    assert len(mine) == 1 and mine[0]["route"] == "/worlds/{world}" and mine[0]["status"] == 200
    assert mine[0]["level"] == "info" and mine[0]["ts"].endswith("Z")
    last = lines[-1]
    assert last["status"] == 404 and last["request_id"] == fresh.headers["x-request-id"]
    # the audit log records the same id the log line carries
    store = app.state.service.store
    assert [row["request_id"] for row in store.audit_log("w1")] != []


def test_the_access_log_is_off_unless_switched_on(tmp_path, caplog):
    """A process logging `qmtl` at INFO (a live run with its embedded world) gets no line per
    request."""
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    with caplog.at_level(logging.INFO, logger="qmtl"), TestClient(app) as c:
        c.get("/healthz")
    assert not [r for r in caplog.records if r.name == "qmtl.world.access"]
