"""An event stream ends with its token, on the real ``qmtl world serve``: a viewer's
``/events`` opened before ``qmtl world token revoke`` and its ``/updates`` opened before the
token's expiry each close with a last ``event: error`` naming the reason."""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx
import pytest

from tests import procs
from tests.world_api.test_tls import ROOT, qmtl_serve
from world_api.client import UnauthorizedError, WorldServiceClient
from world_api.service.auth import create_token, token_id
from world_api.service.store import open_store

pytestmark = pytest.mark.timeout(120)


def _read(url: str, path: str, token: str, lines: list[str], done: threading.Event) -> None:
    try:
        with httpx.stream(
            "GET",
            url + path,
            params={"heartbeat": 0.2},
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(30, read=10),
        ) as r:
            lines.append(f"status {r.status_code}")
            lines.extend(r.iter_lines())
    finally:
        done.set()


def _open(url: str, path: str, token: str) -> tuple[list[str], threading.Event]:
    lines: list[str] = []
    done = threading.Event()
    threading.Thread(target=_read, args=(url, path, token, lines, done), daemon=True).start()
    deadline = time.monotonic() + 20
    while lines.count("event: keep-alive") < 2:  # open and receiving
        assert time.monotonic() < deadline and not done.is_set(), lines[-5:]
        time.sleep(0.05)
    return lines, done


def _error(lines: list[str]) -> dict:
    at = lines.index("event: error")
    data = next(line for line in lines[at:] if line.startswith("data: "))
    return json.loads(data.removeprefix("data: "))


@pytest.fixture
def world(tmp_path):
    db = str(tmp_path / "world.db")
    store = open_store(db)
    ops = create_token(store, "operator", "ops")
    viewer = create_token(store, "viewer", "screen")
    store.close()
    with qmtl_serve(db, "--token-ttl", "0.5") as port:
        url = f"http://127.0.0.1:{port}"
        r = httpx.post(
            f"{url}/worlds", json={"id": "w"}, headers={"Authorization": f"Bearer {ops}"}
        )
        assert r.status_code == 201
        yield url, db, viewer


def test_a_stream_ends_when_its_token_is_revoked(world):
    url, db, viewer = world
    lines, done = _open(url, "/worlds/w/events", viewer)
    client_error: list[BaseException] = []

    def follow() -> None:
        with (
            WorldServiceClient(url, viewer) as client,
            client.events("w", follow=True, heartbeat=0.2) as stream,
        ):
            try:
                for _ in stream:
                    pass
            except UnauthorizedError as exc:
                client_error.append(exc)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(0.5)
    out = procs.run(
        [
            sys.executable,
            "-m",
            "qmtl.cli",
            "world",
            "token",
            "revoke",
            token_id(viewer),
            "--store",
            db,
        ],
        cwd=ROOT,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    revoked = time.monotonic()
    assert done.wait(10), f"the stream is still open after the revocation: {lines[-4:]}"
    took = time.monotonic() - revoked
    error = _error(lines)
    assert error["reason"] == "revoked"
    assert error["detail"].startswith(f"token {token_id(viewer)} was revoked at ")
    assert took < 3, f"the stream ended {took:.1f} s after the revocation (TTL 0.5 s)"
    follower.join(10)
    assert client_error and "was revoked" in str(client_error[0])
    assert client_error[0].status == 401
    # and a new stream is refused outright
    assert (
        httpx.get(
            f"{url}/worlds/w/events", headers={"Authorization": f"Bearer {viewer}"}
        ).status_code
        == 401
    )


def test_a_stream_ends_when_its_token_expires(world):
    url, db, _ = world
    store = open_store(db)  # made once the server is up: a slow start must not expire it
    brief = create_token(store, "viewer", "visitor", expires=time.time_ns() + 4 * 10**9)
    store.close()
    lines, done = _open(url, "/worlds/w/updates", brief)
    assert lines[0] == "status 200" and "event: world" in lines
    assert done.wait(15), f"the stream outlived its token: {lines[-4:]}"
    error = _error(lines)
    assert error["reason"] == "expired"
    assert error["detail"].startswith(f"token {token_id(brief)} expired at ")
