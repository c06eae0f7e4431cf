"""A world runner's wake-up call: the world's event stream, followed in a thread, sets an
event on every activation event (a promotion, a demotion, an activation...), so the runner
steps at once instead of at its next heartbeat. Without the stream (a broken connection,
an older service) the runner still steps every heartbeat period.

>>> w = EventWaker("http://127.0.0.1:9", None, "w", threading.Event(), retry=0.1)
>>> w.close()  # never started: nothing to stop
"""

from __future__ import annotations

import logging
import threading

from qmtl.core.contracts import ActivationEvent
from world_api.client import EventStream, WorldServiceClient, WorldServiceError

log = logging.getLogger("qmtl.runner")


class EventWaker:
    """Follow ``world``'s events at ``url`` and set ``wake`` on each activation event;
    reconnect after ``retry`` seconds when the stream breaks."""

    def __init__(
        self, url: str, token: str | None, world: str, wake: threading.Event, retry: float
    ) -> None:
        self.url, self.token, self.world, self.wake, self.retry = url, token, world, wake, retry
        self._closed = threading.Event()
        self._stream: EventStream | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EventWaker:
        """Start following in a daemon thread."""
        self._thread = threading.Thread(target=self._follow, name="runner-events", daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        after: int | None = None
        while not self._closed.is_set():
            try:
                with WorldServiceClient(self.url, self.token) as c:
                    if after is None:
                        after = int(c.world(self.world)["seq"])
                    with c.events(self.world, after=after, follow=True,
                                  heartbeat=max(1.0, self.retry)) as stream:  # fmt: skip
                        self._stream = stream
                        for ev in stream:
                            if self._closed.is_set():
                                return
                            if isinstance(ev, ActivationEvent):
                                after = ev.seq
                                self.wake.set()
            except (WorldServiceError, OSError, ValueError) as exc:
                if not self._closed.is_set():
                    log.debug("world %r: event stream: %s", self.world, exc)
            finally:
                self._stream = None
            self._closed.wait(self.retry)

    def close(self) -> None:
        """Stop following (the thread wakes from its read and ends)."""
        self._closed.set()
        stream = self._stream
        if stream is not None:
            stream.interrupt()
        if self._thread is not None:
            self._thread.join(timeout=5)
