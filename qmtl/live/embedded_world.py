"""A world served in process for a live run given no ``--url``: the WorldService app on
SQLite, on a free local port, so a new user can watch a paper run with nothing else started.

>>> import tempfile
>>> from pathlib import Path
>>> with embedded_world(LiveOptions(world="demo"), Path(tempfile.mkdtemp())) as url:
...     info = WorldServiceClient(url).call("GET", "/worlds/demo")
>>> info["id"], url.startswith("http://127.0.0.1:")
('demo', True)
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from qmtl.live.options import LiveError, LiveOptions
from world_api.client import WorldServiceClient, WorldServiceError
from world_api.service.app import create_app
from world_api.service.store import Conflict, WorldInfo

log = logging.getLogger("qmtl.live")

START_TIMEOUT = 15.0
"""Seconds the embedded server may take to accept connections."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Return once ``server`` accepts connections; :class:`LiveError` if its thread ends
    first or it takes longer than :data:`START_TIMEOUT`."""

    def started() -> bool:
        if not thread.is_alive():
            raise LiveError("the embedded world service did not start (its server exited)")
        return bool(server.started)

    waiting = Retrying(
        retry=retry_if_result(lambda up: not up),
        stop=stop_after_delay(START_TIMEOUT),
        wait=wait_fixed(0.02),
        retry_error_callback=lambda _state: False,
    )
    if not waiting(started):
        raise LiveError(
            f"the embedded world service did not start within {START_TIMEOUT:g} s"
        )


def _put_policy(url: str, world: str, policy: str) -> None:
    client = WorldServiceClient(url)
    try:
        client.call("PUT", f"/worlds/{world}/policy", content=Path(policy).read_text())
    except (OSError, WorldServiceError) as exc:
        raise LiveError(f"--policy {policy}: {exc}") from None
    finally:
        client.close()


@contextlib.contextmanager
def embedded_world(options: LiveOptions, state_dir: Path) -> Iterator[str]:
    """Serve a world in process (SQLite: ``options.world_store``, else
    ``state_dir/local-world.db``) on a free port; create ``options.world`` in it and put
    ``options.policy``; yield its URL (see the module docstring)."""
    store_path = options.world_store or str(state_dir / "local-world.db")
    world_log = logging.getLogger("qmtl.world")
    level = world_log.level
    world_log.setLevel(logging.ERROR)  # its "insecure dev mode" warning: it is local and ours
    try:
        app = create_app(store_path, insecure_dev=True)
    finally:
        world_log.setLevel(level)
    store = app.state.service.store
    with contextlib.suppress(Conflict):
        store.create_world(WorldInfo(id=options.world, name="embedded"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, name="qmtl-embedded-world", daemon=True)
    thread.start()
    try:
        _wait_started(server, thread)
        url = f"http://127.0.0.1:{port}"
        log.info("embedded world %r served at %s (store %s)", options.world, url, store_path)
        if options.policy:
            _put_policy(url, options.world, options.policy)
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
