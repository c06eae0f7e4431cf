"""The one HTTP client of the WorldService, used by ``qmtl submit``, ``qmtl world`` and a live
run's world link.

One method per endpoint; the answers are the service's JSON. An error answer raises the
:class:`WorldServiceError` subclass of its status (:class:`NotFoundError`,
:class:`ConflictError`, :class:`UnauthorizedError`, :class:`ForbiddenError`,
:class:`InvalidRequestError`, :class:`UnavailableError`) with the service's own ``detail``;
a service that cannot be reached is an :class:`UnavailableError` too. The activation event
stream (Server-Sent Events, read with ``httpx-sse``) is an iterator of typed events
(:data:`WorldEvent`); an event name it does not know is skipped.

>>> error_for(404, "GET /worlds/x", "unknown world 'x'")
NotFoundError("GET /worlds/x: 404: unknown world 'x'")
>>> isinstance(error_for(503, "GET /worlds", "store down"), ConnectionError)
True
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError, connect_sse

from qmtl.core.contracts import ActivationEvent, ControlEvent, EvaluationEvent, MetricsUpdate
from qmtl.core.errors import QmtlError

DEFAULT_URL = "http://127.0.0.1:8600"
"""Where ``qmtl world serve`` listens by default."""


class WorldServiceError(QmtlError, RuntimeError):
    """The world service could not be reached, or answered with an error (message says).

    ``status`` is the HTTP status (None when there was no answer), ``detail`` the
    service's own explanation.

    >>> WorldServiceError("x").args
    ('x',)
    """

    status: int | None = None
    detail: str = ""


class InvalidRequestError(WorldServiceError, ValueError):
    """400, 413 or 422: the request was malformed or refused as invalid."""


class UnauthorizedError(WorldServiceError, PermissionError):
    """401: no token, or one the service does not know, or an expired or revoked one (the
    detail says which)."""


class ForbiddenError(WorldServiceError, PermissionError):
    """403: the token's role may not do this."""


class NotFoundError(WorldServiceError, LookupError):
    """404: no such world, policy version, strategy or plan."""


class ConflictError(WorldServiceError):
    """409: already exists, already applied, stale seq, or the world changed meanwhile."""


class UnavailableError(WorldServiceError, ConnectionError):
    """The service cannot be reached, or answered 502/503/504 (nothing was written)."""


_BY_STATUS: dict[int, type[WorldServiceError]] = {
    400: InvalidRequestError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: InvalidRequestError,
    502: UnavailableError,
    503: UnavailableError,
    504: UnavailableError,
}


def error_for(status: int, what: str, detail: str) -> WorldServiceError:
    """The error of an answer with ``status`` to ``what`` (e.g. ``"GET /worlds"``).

    >>> error_for(418, "GET /tea", "a teapot").status
    418
    """
    cls = _BY_STATUS.get(status, WorldServiceError)
    exc = cls(f"{what}: {status}: {detail}")
    exc.status, exc.detail = status, detail
    return exc


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("detail", response.text)) if isinstance(body, dict) else response.text


def _sse_detail(data: str) -> str:
    """The ``detail`` of an ``event: error`` of a stream (its data as is when not JSON).

    >>> _sse_detail('{"detail": "token 0a1b2c3d was revoked", "reason": "revoked"}')
    'token 0a1b2c3d was revoked'
    """
    try:
        body = json.loads(data)
    except ValueError:
        return data
    return str(body.get("detail", data)) if isinstance(body, dict) else data


def seg(text: str) -> str:
    """``text`` percent-encoded as one URL path segment (``/``, ``?``, ``#``, ``%`` and
    every non-ASCII character encoded).

    >>> seg("a?b/c d")
    'a%3Fb%2Fc%20d'
    """
    return quote(text, safe="")


def strategy_path(world: str, strategy_id: str, sub: str = "") -> tuple[str, dict[str, str]]:
    """The path and query parameters of a per-strategy endpoint: the id as an encoded
    path segment, or, for an id a path segment cannot carry (one with ``/``, or only dots),
    as ``?id=`` on the twin route (``world_api/service/routers/by_id.py``).

    >>> strategy_path("w", "a?b", "/override")
    ('/worlds/w/strategies/a%3Fb/override', {})
    >>> strategy_path("w", "evil/slash")
    ('/worlds/w/strategy', {'id': 'evil/slash'})
    """
    if "/" in strategy_id or set(strategy_id) <= {"."}:
        return f"/worlds/{seg(world)}/strategy{sub}", {"id": strategy_id}
    return f"/worlds/{seg(world)}/strategies/{seg(strategy_id)}{sub}", {}


def _present(**params: Any) -> dict[str, Any]:
    """The query parameters that are not None.

    >>> _present(kind="realized", after=None)
    {'kind': 'realized'}
    """
    return {k: v for k, v in params.items() if v is not None}


@dataclass(frozen=True)
class KeepAlive:
    """The world is there and nothing changed (sent every ``heartbeat`` seconds).

    >>> KeepAlive()
    KeepAlive()
    """


WorldEvent = ActivationEvent | ControlEvent | EvaluationEvent | KeepAlive
"""What a world's event stream yields (an EvaluationEvent: no activation changed)."""
_OTHER: dict[str, Any] = {"control": ControlEvent, "evaluation": EvaluationEvent}


class EventStream:
    """An open event stream of one world: a context manager and an iterator of
    :data:`WorldEvent`. :meth:`interrupt` (from another thread) ends a blocked read.

    Iterating raises :class:`UnavailableError` when the connection breaks or stays silent
    longer than the read timeout, and the 401 error of the service's ``event: error``
    when the token was revoked or expired while the stream was open; it simply ends when
    the service ends the stream.
    """

    def __init__(self, http: httpx.Client, world: str, params: dict[str, Any],
                 headers: dict[str, str], timeout: httpx.Timeout) -> None:
        self.world = world
        self._what = f"GET /worlds/{world}/events"
        self._cm = connect_sse(http, "GET", f"/worlds/{seg(world)}/events", params=params,
                               headers=headers, timeout=timeout)
        self._source: EventSource | None = None
        self._socket: socket.socket | None = None
        self.last_seq: int | None = None

    def __enter__(self) -> EventStream:
        try:
            source = self._cm.__enter__()
        except httpx.HTTPError as exc:
            raise UnavailableError(f"{self._what}: cannot reach the world service: {exc}") from None
        response = source.response
        if response.status_code >= 400:
            response.read()
            self._cm.__exit__(None, None, None)
            raise error_for(response.status_code, self._what, _detail(response))
        self._source = source
        network = response.extensions.get("network_stream")
        self._socket = network.get_extra_info("socket") if network is not None else None
        return self

    def __iter__(self) -> Iterator[WorldEvent]:
        if self._source is None:
            raise RuntimeError("open the stream first: `with client.events(...) as stream:`")
        try:
            for sse in self._source.iter_sse():
                if sse.event == "activation":
                    event = ActivationEvent.model_validate_json(sse.data)
                    self.last_seq = event.seq
                    yield event
                elif sse.event in _OTHER:  # a plan apply's step, an evaluator's record
                    other = _OTHER[sse.event].model_validate_json(sse.data)
                    self.last_seq = other.seq
                    yield other
                elif sse.event == "keep-alive":
                    yield KeepAlive()
                elif sse.event == "error":  # the token was revoked or expired meanwhile
                    raise error_for(401, self._what, _sse_detail(sse.data))
        except (httpx.HTTPError, SSEError) as exc:
            why = f"{type(exc).__name__}: {exc}".rstrip(": ")
            raise UnavailableError(f"{self._what}: the stream broke ({why})") from None

    def interrupt(self) -> None:
        """Shut the connection down, so a thread blocked reading it wakes (and its
        iteration raises :class:`UnavailableError` or ends)."""
        sock = self._socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def __exit__(self, *exc: object) -> None:
        if self._source is not None:
            self._source = None
            with contextlib.suppress(httpx.HTTPError):
                self._cm.__exit__(None, None, None)


class WorldServiceClient:
    """The WorldService at ``url`` with an optional bearer ``token`` (see the module
    docstring). ``http`` is an ``httpx.Client`` to use instead of a new one (e.g. a
    FastAPI ``TestClient``); its base URL and headers are then the caller's.

    >>> c = WorldServiceClient("http://127.0.0.1:9", "t0k")
    >>> c.url, c.http.headers["authorization"]
    ('http://127.0.0.1:9', 'Bearer t0k')
    >>> c.close()
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        timeout: float = 30.0,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.url = url.rstrip("/") if http is None else str(http.base_url).rstrip("/")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._own = http is None
        self.http = http or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # -- plumbing ----------------------------------------------------------------------------
    def call(self, method: str, path: str, **kw: Any) -> Any:
        """Send one request; return the decoded JSON body (None when empty)."""
        try:
            r = self.http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"cannot reach the world service at {self.url}: {exc}"
            ) from None
        if r.status_code >= 400:
            raise error_for(r.status_code, f"{method} {path}", _detail(r))
        return r.json() if r.content else None

    def close(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        if self._own:
            self.http.close()

    def __enter__(self) -> WorldServiceClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- worlds and policies -----------------------------------------------------------------
    def create_world(self, world: str, name: str = "", capital: float = 1_000_000.0,
                     mode: str = "paper") -> dict[str, Any]:
        """Create a world (its policy is the default, version 1)."""
        body = {"id": world, "name": name or world, "capital": capital, "mode": mode}
        return self.call("POST", "/worlds", json=body)

    def list_worlds(self) -> list[dict[str, Any]]:
        """Every world."""
        return self.call("GET", "/worlds")

    def world(self, world: str) -> dict[str, Any]:
        """A world with its ``policy_version`` and ``seq``."""
        return self.call("GET", f"/worlds/{seg(world)}")

    def put_policy(self, world: str, text: str) -> dict[str, Any]:
        """Set a new policy version from YAML or JSON text; ``{version, events}``."""
        return self.call("PUT", f"/worlds/{seg(world)}/policy", content=text)

    def policy(self, world: str, version: int | None = None) -> dict[str, Any]:
        """The current policy (or ``version``): ``{world, version, policy}``."""
        params = {} if version is None else {"version": version}
        return self.call("GET", f"/worlds/{seg(world)}/policy", params=params)

    def put_market(self, world: str, text: str) -> dict[str, Any]:
        """Declare the world's market (a new version) from YAML or JSON text (operator)."""
        return self.call("PUT", f"/worlds/{seg(world)}/market", content=text)

    def market(self, world: str, version: int | None = None) -> dict[str, Any]:
        """The world's market (or ``version``): ``{world, version, market, summary}``
        (NotFoundError when it has none)."""
        params = {} if version is None else {"version": version}
        return self.call("GET", f"/worlds/{seg(world)}/market", params=params)

    # -- metrics and views -------------------------------------------------------------------
    def post_metrics(self, world: str, updates: Sequence[MetricsUpdate] | str) -> dict[str, Any]:
        """Post updates (models, or a JSON array already encoded) as one batch;
        ``{accepted, duplicates, events}``."""
        body = updates if isinstance(updates, str) else (
            "[" + ",".join(u.model_dump_json() for u in updates) + "]")
        return self.call("POST", f"/worlds/{seg(world)}/metrics", content=body,
                         headers={"content-type": "application/json"})

    def strategies(self, world: str) -> list[dict[str, Any]]:
        """Every strategy's view, ranked ones first."""
        return self.call("GET", f"/worlds/{seg(world)}/strategies")

    def strategy(self, world: str, strategy_id: str) -> dict[str, Any]:
        """One strategy's view (status, weight, rank, metrics, hints, ...)."""
        path, params = strategy_path(world, strategy_id)
        return self.call("GET", path, params=params)

    def strategy_returns(self, world: str, strategy_id: str, *, after: int | None = None,
                         limit: int | None = None) -> dict[str, Any]:
        """A strategy's kept timed returns: ``{strategy_id, points: [{ts, return, equity}]}``."""
        path, params = strategy_path(world, strategy_id, "/returns")
        return self.call("GET", path, params={**params, **_present(after=after, limit=limit)})

    def world_returns(self, world: str, kind: str = "realized", *, after: int | None = None,
                      limit: int | None = None) -> dict[str, Any]:
        """The world's own return, ``kind`` ``realized`` or ``pro_forma``:
        ``{world, kind, points: [{ts, return, equity}]}`` (``after``: points with a later
        ts; ``limit``: at most this many)."""
        return self.call("GET", f"/worlds/{seg(world)}/returns",
                         params=_present(kind=kind, after=after, limit=limit))

    def world_metrics(self, world: str) -> dict[str, Any]:
        """The metrics of the world's return: ``{world, realized: {n_bars, metrics},
        pro_forma: {n_bars, metrics}}``."""
        return self.call("GET", f"/worlds/{seg(world)}/metrics")

    def activation(self, world: str) -> dict[str, Any]:
        """The activation table and the seq it is at."""
        return self.call("GET", f"/worlds/{seg(world)}/activation")

    def allocations(self, world: str) -> dict[str, Any]:
        """The published weights."""
        return self.call("GET", f"/worlds/{seg(world)}/allocations")

    def plan(self, world: str) -> dict[str, Any]:
        """Make an allocation plan."""
        return self.call("POST", f"/worlds/{seg(world)}/allocations/plan")

    def apply(self, world: str, plan_id: str, overrides: dict[str, float] | None = None,
              drain: float | None = None) -> dict[str, Any]:
        """Apply a plan (freeze, drain ``drain`` seconds, switch, unfreeze), optionally
        overriding some weights."""
        body: dict[str, Any] = {"plan_id": plan_id, "overrides": overrides or {}}
        if drain is not None:
            body["drain"] = drain
        return self.call("POST", f"/worlds/{seg(world)}/allocations/apply", json=body)

    def put_override(self, world: str, strategy_id: str, state: str, reason: str,
                     weight: float | None = None,
                     expires_in: float | None = None) -> dict[str, Any]:
        """Force a strategy active or inactive (or pin its weight) until cleared or
        ``expires_in`` seconds from now."""
        body = _present(state=state, reason=reason, weight=weight, expires_in=expires_in)
        path, params = strategy_path(world, strategy_id, "/override")
        return self.call("PUT", path, params=params, json=body)

    def clear_override(self, world: str, strategy_id: str) -> dict[str, Any]:
        """Clear a strategy's override."""
        path, params = strategy_path(world, strategy_id, "/override")
        return self.call("DELETE", path, params=params)

    def approve(self, world: str, strategy_id: str) -> dict[str, Any]:
        """Approve a strategy's waiting promotion to live (operator)."""
        path, params = strategy_path(world, strategy_id, "/approve")
        return self.call("POST", path, params=params)

    # -- owners ------------------------------------------------------------------------------
    def owners(self, world: str) -> list[dict[str, Any]]:
        """Every strategy's owner: ``[{world, strategy_id, owner, operator_owned}]``."""
        return self.call("GET", f"/worlds/{seg(world)}/owners")

    def owner(self, world: str, strategy_id: str) -> dict[str, Any]:
        """One strategy's owner (``owner`` None: operator-owned)."""
        path, params = strategy_path(world, strategy_id, "/owner")
        return self.call("GET", path, params=params)

    def transfer_owner(self, world: str, strategy_id: str, owner: str | None) -> dict[str, Any]:
        """Give a strategy to ``owner`` (None: operator-owned); operator, audited."""
        path, params = strategy_path(world, strategy_id, "/owner")
        return self.call("PUT", path, params=params, json={"owner": owner})

    def submitters(self, world: str) -> list[str] | None:
        """The owners who may submit to ``world`` (None: any developer)."""
        return self.call("GET", f"/worlds/{seg(world)}/submitters")["owners"]

    def set_submitters(self, world: str, owners: Sequence[str] | None) -> list[str] | None:
        """Restrict who may submit to ``world`` (None lifts it); operator, audited."""
        body = {"owners": None if owners is None else list(owners)}
        return self.call("PUT", f"/worlds/{seg(world)}/submitters", json=body)["owners"]

    def overrides(self, world: str) -> list[dict[str, Any]]:
        """The world's stored overrides."""
        return self.call("GET", f"/worlds/{seg(world)}/overrides")["overrides"]

    def audit(
        self,
        world: str,
        *,
        limit: int | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[dict[str, Any]]:
        """The world's audit rows, newest first, following the service's pages until ``limit``
        rows (None: all); ``actor``/``action`` (exact), ``since``/``until`` (epoch ns,
        inclusive) filter them on the service."""
        params: dict[str, Any] = {k: v for k, v in (
            ("actor", actor), ("action", action), ("since", since), ("until", until))
            if v is not None}
        rows: list[dict[str, Any]] = []
        path = f"/worlds/{seg(world)}/audit"
        while limit is None or len(rows) < limit:
            if limit is not None:
                params["limit"] = min(limit - len(rows), 1000)
            try:
                r = self.http.get(path, params=params)
            except httpx.HTTPError as exc:
                raise UnavailableError(
                    f"cannot reach the world service at {self.url}: {exc}"
                ) from None
            if r.status_code >= 400:
                raise error_for(r.status_code, f"GET {path}", _detail(r))
            rows.extend(r.json())
            cursor = r.headers.get("X-Next-Cursor")
            if cursor is None:
                break
            params["before"] = cursor
        return rows

    # -- events ------------------------------------------------------------------------------
    def events(
        self,
        world: str,
        *,
        after: int | None = None,
        last_event_id: int | None = None,
        follow: bool = False,
        heartbeat: float | None = None,
        read_timeout: float | None = None,
    ) -> EventStream:
        """The world's activation events after seq ``after`` (or resuming after
        ``last_event_id``, sent as the ``Last-Event-ID`` header); without ``follow`` the
        stream ends once caught up. ``heartbeat``: keep-alive interval asked of the
        service; ``read_timeout``: longest silence before the stream counts as broken
        (None: wait forever). Use it as ``with client.events(w) as stream: for ev in
        stream: ...``."""
        params: dict[str, Any] = {}
        if after is not None:
            params["after"] = after
        if not follow:
            params["once"] = 1
        if heartbeat is not None:
            params["heartbeat"] = heartbeat
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        return EventStream(self.http, world, params, headers, timeout)

    def event_list(self, world: str, **kw: Any) -> list[ActivationEvent]:
        """The activation events of ``events`` without ``follow`` (until caught up)."""
        with self.events(world, **kw) as stream:
            return [e for e in stream if isinstance(e, ActivationEvent)]
