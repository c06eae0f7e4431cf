"""A live run's two links to its world, each in a thread of its own so the flow never waits
on the network; both talk through :class:`world_api.client.WorldServiceClient` and retry
with exponential backoff (``tenacity``):

- :class:`ActivationSubscriber` keeps an :class:`dataflows.gate.ActivationBook` current: it
  loads the activation snapshot, then follows the world's event stream from the snapshot's
  seq, with keep-alives every ``heartbeat`` seconds. A dropped or silent stream marks the
  book lost (the gate holds orders) and is reconnected with backoff, resuming after the
  last seq seen; a stream that had worked for a while is reconnected at once. A stream that
  stays up does not prove the world is still there (a deleted world's stream goes on sending
  keep-alives), so every ``recheck`` seconds the subscriber reads the activation snapshot
  again: a 404 means the world is gone (:meth:`ActivationBook.vanish`), a seq below the
  one seen that it was made again (both latch: orders held for the rest of the run), and a
  snapshot at the seq already seen replaces the table (a strategy it no longer lists is
  held).
- :class:`MetricsPoster` sends the MetricsUpdates queued in the run's store (written there
  by the flow before its snapshot, so a killed run loses none) in order, batching what
  queued up; a failed post is retried (the world deduplicates on strategy, run and seq), so
  a world outage delays updates but loses none.

>>> from dataflows.gate import ActivationBook, verdict
>>> book = ActivationBook("w")
>>> sub = ActivationSubscriber(book, "http://127.0.0.1:9", backoff=(0.05, 0.1))
>>> verdict(book, "s", now=0.0, max_age=30.0).kind   # held until the snapshot is loaded
'hold'
>>> sub.close()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_exponential,
)

from dataflows.gate import ActivationBook
from qmtl.core.contracts import ControlEvent, EvaluationEvent
from qmtl.core.errors import QmtlError
from world_api.client import (
    EventStream,
    KeepAlive,
    NotFoundError,
    WorldServiceClient,
    WorldServiceError,
)

log = logging.getLogger("qmtl.live")


class WorldUnavailable(QmtlError, RuntimeError):
    """The world service cannot be reached or refused (the text says which); ``status`` is
    the HTTP status of a refusal (None when there was no answer)."""

    status: int | None = None
    detail: str = ""


def world_info(url: str, token: str | None, world: str, timeout: float = 10.0) -> dict[str, Any]:
    """``GET /worlds/{world}``; :class:`WorldUnavailable` with the reason otherwise.

    >>> world_info("http://127.0.0.1:9", None, "w", timeout=1.0)
    Traceback (most recent call last):
    ...
    connectors.live.world_link.WorldUnavailable: cannot reach the world service at ...
    """
    with WorldServiceClient(url, token, timeout) as client:
        try:
            return client.world(world)
        except WorldServiceError as exc:
            err = WorldUnavailable(str(exc))
            err.status, err.detail = exc.status, exc.detail
            raise err from None


def _retrying(stop: threading.Event, backoff: tuple[float, float], before_sleep: Any) -> Retrying:
    """Retry any exception with exponential backoff from ``backoff[0]`` to ``backoff[1]``
    seconds, until ``stop`` is set (which also cuts a wait short)."""
    lo, hi = backoff
    return Retrying(
        retry=retry_if_exception_type(Exception),
        wait=wait_exponential(multiplier=lo, min=lo, max=hi),
        stop=stop_when_event_set(stop),
        sleep=stop.wait,
        before_sleep=before_sleep,
    )


def _why(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}".strip() if exc is not None else "unknown"


class ActivationSubscriber:
    """Follows a world's activation stream into ``book`` (see the module docstring)."""

    def __init__(
        self,
        book: ActivationBook,
        url: str,
        token: str | None = None,
        heartbeat: float = 2.0,
        backoff: tuple[float, float] = (0.2, 5.0),
        recheck: float | None = None,
    ) -> None:
        self.book = book
        self.url = url.rstrip("/")
        self.heartbeat = heartbeat
        self.recheck = heartbeat if recheck is None else recheck
        self._checked = 0.0
        self.backoff = backoff
        self._client = WorldServiceClient(self.url, token, timeout=10.0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: EventStream | None = None
        self._opened_at: float | None = None
        self._heard = threading.Event()  # the first snapshot is in the book (or the world is gone)

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the first snapshot (a run's first bars then follow
        the world's answer instead of being held as ``connecting``); False past it, the run
        goes on with its orders held until the world answers."""
        return self._heard.wait(timeout)

    def _follow(self) -> None:
        """Load the snapshot, then apply the stream's events until it ends or breaks
        (raises) or the subscriber is stopped (returns)."""
        world = self.book.world
        self._opened_at = None
        try:
            self._load()
        except Exception:
            if self.book.gone is not None:
                self._heard.set()  # nothing to wait for: every order is held
            raise
        self._heard.set()
        stream = self._client.events(
            world,
            after=self.book.seq,
            follow=True,
            heartbeat=self.heartbeat,
            read_timeout=3.0 * self.heartbeat + 1.0,
        )
        with stream:
            self._stream = stream
            self._opened_at = time.monotonic()
            try:
                if self._stop.is_set():
                    return
                log.info("following world %s at %s from seq %d", world, self.url, self.book.seq)
                for event in stream:
                    if self._stop.is_set():
                        return
                    now = time.monotonic()
                    if isinstance(event, KeepAlive):
                        self.book.confirm(now)
                        if now - self._checked >= self.recheck:
                            self._recheck()
                    elif isinstance(event, ControlEvent):  # a plan apply: freeze ... unfreeze
                        self.book.control(event.model_dump(), now)
                    elif isinstance(event, EvaluationEvent):  # no activation changed
                        self.book.advance(event.seq, now)
                    else:
                        self.book.apply_event(event.model_dump(), now)
            finally:
                self._stream = None
        if not self._stop.is_set():
            raise ConnectionError("the world closed its event stream")

    def _snapshot(self) -> dict[str, Any]:
        """``GET /worlds/{world}/activation``; a 404 marks the world gone (latched) first."""
        world = self.book.world
        self._checked = time.monotonic()
        try:
            return self._client.activation(world)
        except NotFoundError as exc:
            if self.book.gone is None:
                log.error(
                    "world %s is gone (%s): every order is held for the rest of this "
                    "run; restart the run to follow the world again",
                    world,
                    exc,
                )
            self.book.vanish(str(exc))
            raise

    def _load(self, snapshot: dict[str, Any] | None = None) -> None:
        """Load ``snapshot`` (else a fresh one) into the book; a restarted world latches it
        (logged once)."""
        snapshot = self._snapshot() if snapshot is None else snapshot
        gone = self.book.gone
        self.book.load_snapshot(snapshot, time.monotonic())
        if gone is None and self.book.gone is not None:
            log.error(
                "%s: every order is held for the rest of this run; restart the run to "
                "follow the world again",
                self.book.gone[1],
            )

    def _recheck(self) -> None:
        """Read the snapshot again while the stream is up (see the module docstring); one
        ahead of the book (events on their way) is left to the stream."""
        snapshot = self._snapshot()
        if int(snapshot["seq"]) <= self.book.seq:
            self._load(snapshot)

    def _session(self) -> None:
        """One connection. Raises when it failed (tenacity marks the book lost, waits and
        retries); returns when stopped, or when the stream had worked for a while and then
        broke (a fresh retry sequence: reconnect at once)."""
        try:
            self._follow()
        except Exception as exc:
            if self._stop.is_set() or self.book.gone is not None:
                return  # a world gone for good is not followed again (see _loop)
            opened = self._opened_at
            if opened is None or time.monotonic() - opened <= 5 * self.backoff[0]:
                raise
            why = _why(exc)
            self.book.lose(why)
            log.warning("world %s: %s; orders held, reconnecting", self.book.world, why)

    def _held(self, state: RetryCallState) -> None:
        why = _why(state.outcome.exception() if state.outcome else None)
        self.book.lose(why)
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("world %s: %s; orders held, reconnecting in %.1f s", self.book.world, why, wait)

    def _loop(self) -> None:
        while not self._stop.is_set() and self.book.gone is None:
            try:
                _retrying(self._stop, self.backoff, self._held)(self._session)
            except RetryError:
                return  # stopped while the world was away

    def start(self) -> ActivationSubscriber:
        """Start following in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="qmtl-activation", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop following."""
        self._stop.set()
        stream = self._stream
        if stream is not None:  # wakes the thread blocked reading the stream
            stream.interrupt()
        if self._thread is not None:
            self._thread.join(5)
        self._client.close()


def current_form(body: str) -> str:
    """A queued MetricsUpdate's JSON in the current contract: one queued before returns carried
    their times (bare numbers, which the world refuses) goes without its returns, so its
    metrics still reach the world and the updates batched with it are not refused with it.

    >>> current_form('{"seq": 1, "returns": [[5, 0.1]]}')
    '{"seq": 1, "returns": [[5, 0.1]]}'
    >>> current_form('{"seq": 1, "returns": [0.1, 0.2]}')
    '{"seq": 1, "returns": []}'
    """
    data = json.loads(body)
    returns = data.get("returns")
    if isinstance(returns, list) and any(not isinstance(r, list) for r in returns):
        data["returns"] = []
        return json.dumps(data)
    return body


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

    def post_once(self, client: WorldServiceClient) -> int:
        """Post what is queued now (in batches); return how many the world accepted. A
        batch the world refuses as stale or invalid (409, 422) is dropped, logged: sending
        it again cannot succeed."""
        done = 0
        while True:
            rows = self.outbox.unsent_updates(self.world)
            if not rows:
                return done
            body = "[" + ",".join(current_form(b) for _, b in rows) + "]"
            try:
                client.post_metrics(self.world, body)
            except WorldServiceError as exc:
                if exc.status not in (409, 422):
                    raise
                log.error(
                    "world %s refused %d metric updates (%s): dropped", self.world, len(rows), exc
                )
            self.outbox.mark_sent([i for i, _ in rows])
            done += len(rows)
            self.posted += len(rows)

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        if self.last_error is None:
            log.warning("cannot post metrics to world %s (%s); retrying", self.world, exc)
        self.last_error = str(exc)

    def _loop(self) -> None:
        with WorldServiceClient(self.url, self.token, self.timeout) as client:
            while True:
                stopping = self._stop.is_set()  # then: one last try
                try:
                    _retrying(self._stop, self.backoff, self._failed)(self.post_once, client)
                except RetryError as exc:
                    self.last_error = _why(exc.last_attempt.exception())
                    log.warning(
                        "metric updates left queued (%s); they are sent on the next "
                        "start with this order store",
                        self.last_error,
                    )
                    return
                if self.last_error is not None:
                    log.info("posting metrics to world %s again", self.world)
                self.last_error = None
                if stopping:
                    return
                # at most one post per interval: updates queue up and go in one request,
                # and the flow's thread is not disturbed on every bar
                posted_at = time.monotonic()
                self._wake.wait()
                self._wake.clear()
                self._stop.wait(max(0.0, self.interval - (time.monotonic() - posted_at)))

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
