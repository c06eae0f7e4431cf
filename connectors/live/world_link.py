"""A live run's two links to its world, each in a thread of its own so the flow never waits
on the network:

- :class:`ActivationSubscriber` keeps an :class:`dataflows.gate.ActivationBook` current: it
  loads the activation snapshot, then follows the world's event stream (SSE) from the
  snapshot's seq, with keep-alives every ``heartbeat`` seconds. A dropped or silent stream
  marks the book lost (the gate holds orders) and is reconnected with backoff, resuming
  after the last seq seen.
- :class:`MetricsPoster` sends the MetricsUpdates queued in the run's store (written there
  by the flow before its snapshot, so a killed run loses none) in order, batching what
  queued up; a failed post is retried (the world deduplicates on strategy, run and seq), so
  a world outage delays updates but loses none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

from dataflows.gate import ActivationBook
from qmtl.core.errors import QmtlError

log = logging.getLogger("qmtl.live")


class WorldUnavailable(QmtlError, RuntimeError):
    """The world service cannot be reached or refused (the text says which)."""


def _client(url: str, token: str | None, timeout: float) -> Any:
    from world_api.client import WorldServiceClient

    return WorldServiceClient(url, token, timeout)


def world_info(url: str, token: str | None, world: str, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /worlds/{world}``; :class:`WorldUnavailable` with the reason otherwise."""
    from world_api.client import WorldServiceError

    client = _client(url, token, timeout)
    try:
        return client.call("GET", f"/worlds/{world}")
    except WorldServiceError as exc:
        raise WorldUnavailable(str(exc)) from None
    finally:
        client.close()


class ActivationSubscriber:
    """Follows a world's activation stream into ``book`` (see the module docstring)."""

    def __init__(
        self,
        book: ActivationBook,
        url: str,
        token: str | None = None,
        heartbeat: float = 2.0,
        backoff: tuple[float, float] = (0.2, 5.0),
    ) -> None:
        self.book = book
        self.url = url.rstrip("/")
        self.token = token
        self.heartbeat = heartbeat
        self.backoff = backoff
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._socket: Any = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _follow(self) -> None:
        import httpx

        world = self.book.world
        timeout = httpx.Timeout(10.0, read=3.0 * self.heartbeat + 1.0)
        with httpx.Client(base_url=self.url, headers=self._headers(), timeout=timeout) as http:
            snap = http.get(f"/worlds/{world}/activation")
            snap.raise_for_status()
            self.book.load_snapshot(snap.json(), time.monotonic())
            params = {"after": self.book.seq, "heartbeat": self.heartbeat}
            with http.stream("GET", f"/worlds/{world}/events", params=params) as resp:
                resp.raise_for_status()
                stream = resp.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                log.info("following world %s at %s from seq %d", world, self.url, self.book.seq)
                data: str | None = None
                for line in resp.iter_lines():
                    if self._stop.is_set():
                        return
                    now = time.monotonic()
                    if line.startswith(":"):
                        self.book.confirm(now)
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif line == "" and data is not None:
                        self.book.apply_event(json.loads(data), now)
                        data = None
        if not self._stop.is_set():
            raise ConnectionError("the world closed its event stream")

    def _loop(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._follow()
            except Exception as exc:
                if self._stop.is_set():
                    return
                why = f"{type(exc).__name__}: {exc}".strip()
                self.book.lose(why)
                if time.monotonic() - started > 5 * delay:
                    delay = self.backoff[0]  # it had worked for a while: retry quickly
                log.warning(
                    "world %s: %s; orders held, reconnecting in %.1f s", self.book.world, why, delay
                )
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])

    def start(self) -> ActivationSubscriber:
        """Start following in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="qmtl-activation", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop following."""
        import socket

        self._stop.set()
        sock = self._socket
        if sock is not None:  # wakes the thread blocked reading the stream
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(5)


class MetricsPoster:
    """Posts the MetricsUpdates queued in ``outbox`` (an
    :class:`connectors.live.order_store.OrderStore`) to the world, oldest first, and marks them
    sent once accepted; a failed post is retried with backoff (see the module docstring)."""

    def __init__(
        self,
        outbox: Any,
        url: str,
        token: str | None,
        world: str,
        timeout: float = 10.0,
        backoff: tuple[float, float] = (0.2, 5.0),
        interval: float = 0.1,
    ) -> None:
        self.outbox = outbox
        self.url, self.token, self.world = url, token, world
        self.timeout = timeout
        self.backoff = backoff
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.posted = 0
        self.last_error: str | None = None

    def notify(self) -> None:
        """Something was queued: post soon."""
        self._wake.set()

    def post_once(self, client: Any) -> int:
        """Post what is queued now (in batches); return how many the world accepted."""
        from world_api.client import WorldServiceError

        done = 0
        while True:
            rows = self.outbox.unsent_updates(self.world)
            if not rows:
                return done
            body = "[" + ",".join(b for _, b in rows) + "]"
            try:
                client.call("POST", f"/worlds/{self.world}/metrics", content=body,
                            headers={"content-type": "application/json"})
            except WorldServiceError as exc:
                if " 409: " not in str(exc) and " 422: " not in str(exc):
                    raise
                log.error("world %s refused %d metric updates (%s): dropped", self.world,
                          len(rows), exc)
            self.outbox.mark_sent([i for i, _ in rows])
            done += len(rows)
            self.posted += len(rows)

    def _loop(self) -> None:
        client = _client(self.url, self.token, self.timeout)
        delay = self.backoff[0]
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    self.post_once(client)
                    if self.last_error is not None:
                        log.info("posting metrics to world %s again", self.world)
                    self.last_error = None
                    delay = self.backoff[0]
                except Exception as exc:
                    if self.last_error is None:
                        log.warning("cannot post metrics to world %s (%s); retrying",
                                    self.world, exc)
                    self.last_error = str(exc)
                    if stopping:
                        log.warning("metric updates left queued; they are sent on the next "
                                    "start with this order store")
                        return
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                if stopping:
                    return
                # at most one post per interval: updates queue up and go in one request,
                # and the flow's thread is not disturbed on every bar
                posted_at = time.monotonic()
                self._wake.wait()
                self._wake.clear()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - posted_at)))
        finally:
            client.close()

    def start(self) -> MetricsPoster:
        """Start posting in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="qmtl-metrics", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Post what is queued (one last try), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
