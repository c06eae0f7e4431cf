"""Bounds on what a connection may hold before it has made a request: header size and time,
idle time, and how many connections one client address (and all together) may keep open.

uvicorn's defaults bound none of these: a socket that sends ``GET / HTTP/1.1\\r\\nHost: x\\r\\n``
and then nothing is never closed (a few thousand of them use up the process's open files, and
from then on every client gets an empty reply), and a header that never ends is buffered
without limit (httptools joins its pieces, so each piece copies all before it: the event loop
stalls and memory grows). :func:`limited_http` makes a subclass of uvicorn's httptools
protocol that

- answers **431** once a request's header section (request line and headers) passes
  ``max_header_bytes``, and closes the connection;
- answers **408** and closes a connection whose headers are not complete ``header_timeout``
  seconds after it opened or after the request's first byte (a connection that sends nothing
  is closed then too; between requests uvicorn's keep-alive timeout closes an idle one);
- answers **503** with a JSON ``{"detail": ...}`` and ``Connection: close`` to a connection
  past ``max_per_client`` open from its address, or past ``max_total`` in all, as soon as its
  headers are in (and closes it after at most :data:`REFUSE_WITHIN` seconds if they never
  come), so that past the cap a client reads why, not an empty reply. Refused connections
  are not counted as open; at most :data:`REFUSE_ROOM` wait for their answer at once
  (:data:`REFUSE_PER_CLIENT` of one address), and past those a new one is closed at once (a
  flood of refusals must not use up the open files either, nor one address's refusals
  keep another's from being answered).

The address is the TCP peer's: behind a reverse proxy every connection comes from the proxy,
so there the proxy caps per client and ``max_per_client`` is 0 (off); see docs/security.md.

>>> limits = ConnectionLimits(max_per_client=2, max_total=3)
>>> protocol = limited_http(limits)
>>> issubclass(protocol, HttpToolsProtocol), protocol.limits.max_per_client
(True, 2)
>>> limits.refusal("10.0.0.1") is None
True
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("qmtl.world")

MAX_HEADER_BYTES = 32 * 1024
"""The largest header section (request line and headers) a request may send, in bytes."""

HEADER_TIMEOUT = 10.0
"""Seconds a connection has to complete a request's headers."""

KEEP_ALIVE_TIMEOUT = 5
"""Seconds an idle kept-alive connection stays open between requests."""

MAX_PER_CLIENT = 128
"""Connections one client address may hold open at once (0: no cap)."""

MAX_TOTAL = 2048
"""Connections the service holds open at once, from all clients."""

RESERVED_FILES = 128
"""Open files kept beside the connections: :data:`REFUSE_ROOM` for refused ones, the rest
for the store, logs and Kafka."""

REFUSE_WITHIN = 0.5
"""Seconds a refused connection is kept waiting for its headers (to read its 503)."""

REFUSE_ROOM = 64
"""Refused connections kept at once to answer their 503; past them a connection is closed
unanswered, so that refusing cannot use up the open files."""

REFUSE_PER_CLIENT = 4
"""Refused connections of one address kept at once to answer: one address cannot take the
room to answer everyone else's 503."""


@dataclass
class ConnectionLimits:
    """The bounds (see the module docstring) and the count of open connections by address.

    >>> limits = ConnectionLimits(max_per_client=1, max_total=10)
    >>> limits.opened("10.0.0.1"); limits.refusal("10.0.0.1")
    'too many connections from 10.0.0.1 (1 open, the most one address may): close one first'
    >>> limits.closed("10.0.0.1"); limits.refusal("10.0.0.1") is None
    True
    """

    max_header_bytes: int = MAX_HEADER_BYTES
    header_timeout: float = HEADER_TIMEOUT
    max_per_client: int = MAX_PER_CLIENT
    max_total: int = MAX_TOTAL
    open: Counter[str] = field(default_factory=Counter)
    total: int = 0
    refusing: int = 0
    refusing_from: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    _warned: float = 0.0

    def refusal(self, address: str) -> str | None:
        """Why one more connection from ``address`` is refused, or None when it is not."""
        if self.max_per_client and self.open[address] >= self.max_per_client:
            return (
                f"too many connections from {address} ({self.open[address]} open, the "
                "most one address may): close one first"
            )
        if self.total >= self.max_total:
            return f"the service holds {self.total} connections, the most it may: try again shortly"
        return None

    def opened(self, address: str) -> None:
        """Count a connection from ``address`` open."""
        self.open[address] += 1
        self.total += 1

    def closed(self, address: str) -> None:
        """Count a connection from ``address`` closed."""
        self.total -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def warn(self, why: str) -> None:
        """Log a refusal, at most once every 10 s (a flood must not flood the log)."""
        self.refused += 1
        now = time.monotonic()
        if now - self._warned >= 10:
            self._warned = now
            log.warning("refusing connections (%d so far): %s", self.refused, why)


def fit_open_files(
    max_total: int, soft: int, hard: int, reserve: int = RESERVED_FILES
) -> tuple[int, int]:
    """The open-files limit to ask for and the connection cap that fits in it: the soft limit
    is raised towards ``max_total + reserve`` (never past ``hard``), and the cap lowered to
    what is left after ``reserve`` when even that is too few (at least 1). ``hard`` < 0 means
    unlimited.

    >>> fit_open_files(2048, soft=1024, hard=1048576)
    (2176, 2048)
    >>> fit_open_files(2048, soft=512, hard=512)
    (512, 384)
    >>> fit_open_files(100, soft=65536, hard=65536)
    (65536, 100)
    """
    want = max_total + reserve
    limit = soft if soft >= want else (want if hard < 0 else min(want, hard))
    return limit, max(1, min(max_total, limit - reserve))


def raise_open_files(max_total: int) -> int:
    """Raise this process's soft open-files limit to fit ``max_total`` connections (see
    :func:`fit_open_files`) and return the cap that fits.

    >>> raise_open_files(16) <= 16
    True
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit, cap = fit_open_files(max_total, soft, hard)
    if limit != soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    return cap


def _raw(status: int, reason: str, detail: str, retry: bool = False) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry:
        head.append("retry-after: 1")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def limited_http(limits: ConnectionLimits) -> type[HttpToolsProtocol]:
    """A uvicorn httptools protocol (pass it as ``uvicorn.run(..., http=...)``) bounded by
    ``limits``; its connections are counted in ``limits``.

    >>> limited_http(ConnectionLimits()).__name__
    'LimitedHttpToolsProtocol'
    """

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol with header, time and connection bounds."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._address = ""
            self._counted = ""  # "served", "refused" or "" (not counted)
            self._awaiting_headers = True
            self._header_bytes = 0
            self._restarted = False
            self._header_timer: Any = None
            self._refusal: str | None = None

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._address = self.client[0] if self.client else "local"
            self._refusal = limits.refusal(self._address)
            if self._refusal is None:
                self._counted = "served"
                limits.opened(self._address)
                self._arm(limits.header_timeout)
                return
            limits.warn(self._refusal)
            if (
                limits.refusing >= REFUSE_ROOM
                or limits.refusing_from[self._address] >= REFUSE_PER_CLIENT
            ):
                self.transport.close()  # refusing as many as it may: no answer
                return
            self._counted = "refused"
            limits.refusing += 1
            limits.refusing_from[self._address] += 1
            self.app = _refuse(self._refusal)  # answered once its headers are in
            self._arm(min(limits.header_timeout, REFUSE_WITHIN))

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._counted == "served":
                limits.closed(self._address)
            elif self._counted == "refused":
                limits.refusing -= 1
                limits.refusing_from[self._address] -= 1
                if limits.refusing_from[self._address] <= 0:
                    del limits.refusing_from[self._address]
            self._counted = ""
            super().connection_lost(exc)

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if self._refusal is not None:
                self._answer(_raw(503, "Service Unavailable", self._refusal, retry=True))
            else:
                self._answer(
                    _raw(
                        408,
                        "Request Timeout",
                        f"request headers not complete within {limits.header_timeout:g} s",
                    )
                )

        def _answer(self, response: bytes) -> None:
            if not self.transport.is_closing():
                self.transport.write(response)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            # a header section is fed at most up to the limit: past it, 431 (httptools would
            # otherwise buffer a header without end, copying it at every piece)
            while data and self._awaiting_headers and not self.transport.is_closing():
                room = limits.max_header_bytes - self._header_bytes
                if room <= 0:
                    self._disarm()
                    self._answer(
                        _raw(
                            431,
                            "Request Header Fields Too Large",
                            f"request headers exceed the limit of {limits.max_header_bytes} bytes",
                        )
                    )
                    return
                head, data = data[:room], data[room:]
                self._restarted = False
                super().data_received(head)
                # a request that ended within ``head`` starts the next one's count at 0
                # (what of it was in ``head`` is not counted: at most one limit more)
                self._header_bytes = 0 if self._restarted else self._header_bytes + len(head)
            if data and not self.transport.is_closing():
                super().data_received(data)  # a body, not counted

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm(limits.header_timeout)

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False
            self._disarm()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_headers, self._header_bytes, self._restarted = True, 0, True

    LimitedHttpToolsProtocol.limits = limits  # type: ignore[attr-defined]
    return LimitedHttpToolsProtocol


def _refuse(detail: str) -> Any:
    """An ASGI app answering 503 ``detail`` and closing the connection."""
    body = json.dumps({"detail": detail}).encode()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def uvicorn_options(
    limits: ConnectionLimits, keep_alive: float = KEEP_ALIVE_TIMEOUT
) -> dict[str, Any]:
    """The ``uvicorn.run`` arguments that apply ``limits``.

    >>> sorted(uvicorn_options(ConnectionLimits()))
    ['http', 'timeout_keep_alive']
    """
    return {"http": limited_http(limits), "timeout_keep_alive": keep_alive}
