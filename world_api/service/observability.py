"""What the WorldService tells its operators: Prometheus metrics and JSON logs.

:class:`ServiceMetrics` holds one service's counters in a registry of its own (two apps in
one process do not mix theirs); ``GET /metrics`` (``routers/health.py``) serves them in the
Prometheus text format:

========================================  ====================================================
``qmtl_world_updates_ingested_total``     metric updates accepted, by ``world``
``qmtl_world_updates_duplicate_total``    updates skipped as already seen, by ``world``
``qmtl_world_updates_rejected_total``     refused, by ``world`` and ``reason``: ``stale`` (a
                                          batch with a stale seq, all its updates),
                                          ``wrong_world`` (all its updates), ``invalid`` (a
                                          body that does not validate: one per body),
                                          ``limit`` (a request past a bound of
                                          ``ingest_limits.py``, all its updates)
``qmtl_world_decisions_total``            activation events stored (a strategy's activation
                                          or weight changed), by ``world`` and new ``active``
``qmtl_world_events_published_total``     events handed on after they were stored, by
                                          ``channel``: ``kafka`` (acknowledged by the
                                          broker), ``dashboard`` (live items to subscribers)
``qmtl_world_sse_clients``                event streams open now (``text/event-stream``)
``qmtl_world_store_write_seconds``        histogram: one change written to the store
``qmtl_world_request_seconds``            histogram: requests, by ``method``, ``route`` (the
                                          template, e.g. ``/worlds/{world}``; ``unmatched``
                                          for unknown paths) and ``status``
========================================  ====================================================

:class:`Observe` is the ASGI middleware that times requests, counts open streams and gives
each request its id (``X-Request-ID``, see :func:`request_id`) in a
context variable, which :class:`JsonFormatter` puts on every log line.

>>> m = ServiceMetrics()
>>> m.ingested("w", 3, 1)
>>> m.value("qmtl_world_updates_ingested_total", world="w")
3.0
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("qmtl_request_id", default="")
"""The id of the request being served (empty outside one)."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of the Prometheus text format."""

ACCESS = logging.getLogger("qmtl.world.access")
"""One line per request (method, route, status, duration, request id). Off (WARNING) unless
switched on, e.g. by :func:`json_logging`: a process that logs ``qmtl`` at INFO (a live run
with its embedded world) must not get a line per request."""
ACCESS.setLevel(logging.WARNING)

_STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """One WorldService's Prometheus metrics (see the module docstring).

    >>> m = ServiceMetrics()
    >>> with m.store_write():
    ...     pass
    >>> m.value("qmtl_world_store_write_seconds_count")
    1.0
    """

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        self._ingested = Counter("qmtl_world_updates_ingested", "Metric updates accepted.",
                                 ["world"], registry=r)
        self._duplicates = Counter("qmtl_world_updates_duplicate",
                                   "Metric updates skipped as already seen.", ["world"],
                                   registry=r)
        self._rejected = Counter("qmtl_world_updates_rejected",
                                 "Metric updates refused (stale, wrong_world, limit; invalid bodies).",
                                 ["world", "reason"], registry=r)
        self._decisions = Counter("qmtl_world_decisions",
                                  "Activation events stored (activation or weight changed).",
                                  ["world", "active"], registry=r)
        self._published = Counter("qmtl_world_events_published",
                                  "Events handed on after they were stored.",
                                  ["channel"], registry=r)
        self.sse_clients = Gauge("qmtl_world_sse_clients", "Event streams open now.",
                                 registry=r)
        self._store = Histogram("qmtl_world_store_write_seconds",
                                "Seconds to write one change to the store.",
                                buckets=_STORE_BUCKETS, registry=r)
        self._requests = Histogram("qmtl_world_request_seconds", "Seconds per request.",
                                   ["method", "route", "status"], registry=r)

    # -- hooks -------------------------------------------------------------------------------
    def ingested(self, world: str, accepted: int, duplicates: int) -> None:
        """Count a successful ``POST .../metrics``."""
        self._ingested.labels(world).inc(accepted)
        self._duplicates.labels(world).inc(duplicates)

    def rejected(self, world: str, reason: str, n: int = 1) -> None:
        """Count ``n`` refused updates (see the module docstring for ``reason``)."""
        self._rejected.labels(world, reason).inc(n)

    def written(self, world: str, events: Sequence[Any], kafka: int, dashboard: int) -> None:
        """Count a committed write's activation events and what was published after it."""
        for ev in events:
            self._decisions.labels(world, "true" if ev.active else "false").inc()
        if kafka:
            self._published.labels("kafka").inc(kafka)
        if dashboard:
            self._published.labels("dashboard").inc(dashboard)

    @contextlib.contextmanager
    def store_write(self) -> Iterator[None]:
        """Time one write to the store (failed ones too)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._store.observe(time.perf_counter() - start)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one request's latency."""
        self._requests.labels(method, route, str(status)).observe(seconds)

    # -- reading -----------------------------------------------------------------------------
    def exposition(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0.0 when absent), e.g. for tests and doctests."""
        got = self.registry.get_sample_value(name, labels)
        return 0.0 if got is None else got


_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id(sent: str | None) -> str:
    """The id of a request: the client's ``X-Request-ID`` when it is 1 to 128 characters of
    ``[A-Za-z0-9._-]`` (it goes into logs and the audit log as is), else a fresh one.

    >>> request_id("req-42"), len(request_id("bad id")), len(request_id("x" * 129))
    ('req-42', 32, 32)
    """
    return sent if sent and _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class Observe:
    """ASGI middleware: request latency by route template and status, open event streams,
    and the request id (kept from a well-formed ``X-Request-ID``, else fresh) in
    ``scope["state"]``, :data:`REQUEST_ID` for the logs and the answer's ``X-Request-ID``.

    >>> Observe(lambda *a: None, ServiceMetrics()).metrics.value("qmtl_world_sse_clients")
    0.0
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or ()).get(b"x-request-id")
        rid = request_id(sent.decode("latin-1") if sent else None)
        scope.setdefault("state", {})["request_id"] = rid
        token = REQUEST_ID.set(rid)
        start, status, stream = time.perf_counter(), 500, False

        async def watched(message: Message) -> None:
            nonlocal status, stream
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*(message.get("headers") or ()),
                                      (b"x-request-id", rid.encode())]
                kind = dict(message.get("headers") or ()).get(b"content-type", b"")
                if kind.startswith(b"text/event-stream"):
                    stream = True
                    self.metrics.sse_clients.inc()
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            if stream:
                self.metrics.sse_clients.dec()
            seconds = time.perf_counter() - start
            route = _route(scope)
            self.metrics.request(scope["method"], route, status, seconds)
            if ACCESS.isEnabledFor(logging.INFO):
                ACCESS.info("%s %s %d", scope["method"], scope.get("path", ""), status,
                            extra={"method": scope["method"], "route": route, "status": status,
                                   "duration_ms": round(seconds * 1000, 3)})
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: ``ts`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, ``request_id`` (when inside a request), the access fields (``method``,
    ``route``, ``status``, ``duration_ms``) when present, and ``exc`` for an exception.

    >>> rec = logging.LogRecord("qmtl.world", logging.INFO, "", 0, "hello %s", ("you",), None)
    >>> json.loads(JsonFormatter().format(rec))["message"]
    'hello you'
    """

    FIELDS = ("method", "route", "status", "duration_ms")

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid:
            out["request_id"] = rid
        for field in self.FIELDS:
            if hasattr(record, field):
                out[field] = getattr(record, field)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def json_logging(level: int = logging.INFO) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` (and uvicorn ``log_config``) that writes every log
    line, uvicorn's included, as JSON to stderr; uvicorn's own access log is left off (the
    ``qmtl.world.access`` lines carry the request id and route instead).

    >>> json_logging()["formatters"]["json"]["()"].endswith("JsonFormatter")
    True
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": logging.getLevelName(level)},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            ACCESS.name: {"level": "INFO"},
        },
    }
