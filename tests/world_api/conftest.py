"""Fixtures: a store URL on each backend (SQLite file, PostgreSQL schema of its own), and a
real uvicorn server on a free port."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import uvicorn

PG_URL = os.environ.get("QMTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> bool:
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def _ensure_pg() -> str | None:
    """None when PostgreSQL answers (starting the local cluster if needed), else why not."""
    if _pg_reachable():
        return None
    with contextlib.suppress(Exception):
        version = sorted(os.listdir("/etc/postgresql"))[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       check=False, capture_output=True, timeout=60)
        time.sleep(2)
    return None if _pg_reachable() else f"PostgreSQL not reachable at {PG_URL}"


def backend_url(backend: str, tmp_path: Path, file: str,
                create_schema: bool = False) -> Iterator[str]:
    """A database URL on ``backend``: a SQLite ``file`` in ``tmp_path``, or a PostgreSQL
    schema of its own (created first when asked), dropped afterwards; skips when PostgreSQL
    is not reachable. The fixtures of each store ``yield from`` it."""
    if backend == "sqlite":
        yield str(tmp_path / file)
        return
    why = _ensure_pg()
    if why:
        pytest.skip(why)
    schema = f"qmtl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        if create_schema:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{PG_URL}?schema={schema}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path) -> Iterator[str]:
    yield from backend_url(request.param, tmp_path, "world.db")


@pytest.fixture
def pg_store_url(tmp_path) -> Iterator[str]:
    """A world store on a PostgreSQL schema of its own, for what only a server can do
    (be cut off, refuse connections)."""
    yield from backend_url("postgresql", tmp_path, "world.db")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(app) -> Iterator[str]:
    """Run ``app`` under uvicorn on a free port in a thread; yield its base URL.

    On exit, connections still open (a page's or a run's event stream) are given half a
    second to finish before uvicorn closes them: its default waits for them without limit,
    and a stream whose client has gone is only noticed at its next heartbeat."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=0.5))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class TcpProxy:
    """A TCP forwarder to ``target`` on a free local port that a test can cut and restore,
    to make a real server unreachable without touching it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._socks += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self._socks.clear()
