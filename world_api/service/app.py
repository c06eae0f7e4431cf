"""The WorldService HTTP API (FastAPI).

Every write is authorized by a bearer token's role (viewer < developer < operator) and
audited. A world's writes are serialized by a per-world lock; its engine lives in memory,
rebuilt from the store on first use and after any failed write (one process per store).

>>> import tempfile, os
>>> from fastapi.testclient import TestClient
>>> app = create_app(os.path.join(tempfile.mkdtemp(), "w.db"), insecure_dev=True)
>>> client = TestClient(app)
>>> client.post("/worlds", json={"id": "w1", "name": "demo"}).status_code
201
>>> client.get("/worlds/w1/activation").json()["seq"]
0
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from qmtl.core.contracts import ActivationEvent, MetricsUpdate
from qmtl.core.errors import QmtlError
from world_api.domain.evaluator import Change, StaleUpdate, StrategyView, WorldEngine
from world_api.domain.policy import PolicyError, parse_policy
from world_api.service.auth import allows, resolve
from world_api.service.store import (
    Conflict,
    NotFound,
    Store,
    StoreUnavailable,
    WorldInfo,
    open_store,
)

log = logging.getLogger("qmtl.world")
MAX_BODY = 1 << 20
_UPDATES = TypeAdapter(MetricsUpdate | list[MetricsUpdate])


class HTTPError(QmtlError):
    """An error with an HTTP status and a message a person can act on."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


class Actor(BaseModel):
    """Who is calling: the token's name and role, and the request id."""

    name: str
    role: str
    request_id: str


class ApplyRequest(BaseModel):
    """Apply a plan, optionally overriding some strategies' weights."""

    plan_id: str
    overrides: dict[str, float] = Field(default_factory=dict)


class WorldService:
    """State shared by the endpoints: the store, per-world locks and engines, and a
    condition that wakes event streams when events are written."""

    def __init__(self, store: Store, insecure_dev: bool, relay: Any = None) -> None:
        self.store = store
        self.insecure_dev = insecure_dev
        self.relay = relay
        self._locks: dict[str, threading.Lock] = {}
        self._engines: dict[str, WorldEngine] = {}
        self._guard = threading.Lock()
        self.version = 0  # bumped on every write that produced events

    def lock(self, world: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(world, threading.Lock())

    def engine(self, world: str) -> WorldEngine:
        eng = self._engines.get(world)
        if eng is None:
            eng = self._engines[world] = self.store.load_engine(world)
        return eng

    def forget(self, world: str) -> None:
        self._engines.pop(world, None)

    def write(
        self, world: str, fn: Callable[[WorldEngine], tuple[list[Change], dict[str, Any]]]
    ) -> list[ActivationEvent]:
        """Run ``fn(engine)`` under the world's lock and commit what it returns; on any
        failure drop the in-memory engine so nothing half-applied survives."""
        self.store.get_world(world)
        with self.lock(world):
            if self.relay is not None:
                self.relay.start_world(world, self.store.world_seq(world))
            engine = self.engine(world)
            try:
                changes, commit_args = fn(engine)
                events = self.store.commit(world, engine, changes, **commit_args)
            except BaseException:
                self.forget(world)
                raise
        if events:
            self.version += 1
        if self.relay is not None:
            self.relay.publish(world)  # stored first, then published (outbox)
        return events


def create_app(
    store: str | Store | None = None,
    *,
    insecure_dev: bool = False,
    kafka_brokers: str | None = None,
) -> FastAPI:
    """The WorldService app over ``store`` (a Store or a URL; default ``~/.qmtl/world.db``).
    With ``kafka_brokers``, activation events are also published to Kafka topics
    ``qmtl.world.<id>.activation`` after they are stored."""
    backend = store if isinstance(store, Store) else open_store(store)
    relay = None
    if kafka_brokers:
        from world_api.service.kafka_relay import KafkaRelay

        relay = KafkaRelay(kafka_brokers, backend)
    svc = WorldService(backend, insecure_dev, relay)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if relay is not None:
            relay.close()

    app = FastAPI(title="QMTL WorldService", version="0.1.0", lifespan=lifespan)
    app.state.service = svc
    if insecure_dev:
        log.warning("insecure dev mode: no tokens are checked; every caller acts as 'dev'")

    # -- errors and middleware ---------------------------------------------------------------
    def _json(status: int, detail: str) -> JSONResponse:
        return JSONResponse(status_code=status, content={"detail": detail})

    @app.exception_handler(HTTPError)
    async def _http_error(_: Request, exc: HTTPError) -> JSONResponse:
        return _json(exc.status, exc.detail)

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _json(404, str(exc))

    @app.exception_handler(Conflict)
    async def _conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _json(409, str(exc))

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(_: Request, exc: StoreUnavailable) -> JSONResponse:
        return _json(503, f"store unavailable, nothing was written: {exc}")

    @app.exception_handler(PolicyError)
    async def _policy(_: Request, exc: PolicyError) -> JSONResponse:
        return _json(422, f"invalid policy: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _json(422, _describe(exc.errors()))

    @app.middleware("http")
    async def _limits(request: Request, call_next: Callable[..., Any]) -> Any:
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > MAX_BODY:
            return _json(413, f"request body of {size} bytes exceeds the limit of {MAX_BODY}")
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    # -- auth --------------------------------------------------------------------------------
    def role(needed: str) -> Callable[..., Actor]:
        def check(request: Request, authorization: str | None = Header(None)) -> Actor:
            rid = getattr(request.state, "request_id", "")
            if svc.insecure_dev:
                return Actor(name="dev", role="operator", request_id=rid)
            if not authorization or not authorization.lower().startswith("bearer "):
                raise HTTPError(401, "missing bearer token: pass 'Authorization: Bearer <token>'")
            found = resolve(svc.store, authorization[7:].strip())
            if found is None:
                raise HTTPError(401, "unknown token")
            token_role, name = found
            if not allows(token_role, needed):
                raise HTTPError(403, f"role {token_role!r} may not do this; needs {needed!r}")
            return Actor(name=name, role=token_role, request_id=rid)

        return check

    viewer, developer, operator = role("viewer"), role("developer"), role("operator")

    # -- worlds and policies -----------------------------------------------------------------
    @app.post("/worlds", status_code=201)
    def create_world(info: WorldInfo, who: Actor = Depends(operator)) -> WorldInfo:
        svc.store.create_world(info, actor=who.name, request_id=who.request_id)
        return info

    @app.get("/worlds")
    def list_worlds(_: Actor = Depends(viewer)) -> list[WorldInfo]:
        return svc.store.list_worlds()

    @app.get("/worlds/{world}")
    def get_world(world: str, _: Actor = Depends(viewer)) -> dict[str, Any]:
        info = svc.store.get_world(world)
        version, _policy = svc.store.get_policy(world)
        return {**info.model_dump(), "policy_version": version, "seq": svc.store.world_seq(world)}

    @app.put("/worlds/{world}/policy")
    async def put_policy(world: str, request: Request, who: Actor = Depends(operator)) -> Any:
        body = (await request.body()).decode("utf-8", errors="replace")
        policy = parse_policy(body)

        def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
            version = engine.policy_version + 1
            changes = engine.set_policy(policy, version)
            detail = {"version": version, "policy": policy.model_dump(mode="json")}
            return changes, {
                "policy": policy,
                "actor": who.name,
                "action": "put_policy",
                "detail": detail,
                "request_id": who.request_id,
            }

        events = await asyncio.to_thread(svc.write, world, change)
        version, _ = svc.store.get_policy(world)
        return {"world": world, "version": version, "events": [e.model_dump() for e in events]}

    @app.get("/worlds/{world}/policy")
    def get_policy(
        world: str, version: int | None = Query(None, ge=1), _: Actor = Depends(viewer)
    ) -> dict[str, Any]:
        v, policy = svc.store.get_policy(world, version)
        return {"world": world, "version": v, "policy": policy.model_dump(mode="json")}

    # -- metrics -----------------------------------------------------------------------------
    @app.post("/worlds/{world}/metrics")
    async def post_metrics(world: str, request: Request, who: Actor = Depends(developer)) -> Any:
        raw = await request.body()
        try:
            parsed = _UPDATES.validate_json(raw)
        except ValidationError as exc:
            raise HTTPError(422, _describe(exc.errors())) from None
        updates = parsed if isinstance(parsed, list) else [parsed]
        for u in updates:
            if u.world != world:
                raise HTTPError(422, f"update for world {u.world!r} posted to world {world!r}")
        return await asyncio.to_thread(_ingest, world, updates, who)

    def _ingest(world: str, updates: list[MetricsUpdate], who: Actor) -> dict[str, Any]:
        keys = [(u.strategy_id, u.run_id, u.seq) for u in updates]
        duplicates = 0

        def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
            nonlocal duplicates
            seen = svc.store.seen_keys(world, keys)
            fresh, fresh_keys, changes = [], [], []
            for u, k in zip(updates, keys, strict=True):
                if k in seen or k in fresh_keys:
                    duplicates += 1
                    continue
                fresh.append(u)
                fresh_keys.append(k)
            for u in fresh:
                try:
                    changes += engine.ingest(u)
                except StaleUpdate as exc:
                    raise HTTPError(409, str(exc)) from None
            detail = {
                "updates": len(fresh),
                "duplicates": duplicates,
                "strategies": sorted({u.strategy_id for u in fresh}),
            }
            return changes, {
                "keys": fresh_keys,
                "actor": who.name,
                "action": "post_metrics",
                "detail": detail,
                "request_id": who.request_id,
            }

        events = svc.write(world, change)
        return {
            "accepted": len(updates) - duplicates,
            "duplicates": duplicates,
            "events": [e.model_dump() for e in events],
        }

    # -- reads -------------------------------------------------------------------------------
    @app.get("/worlds/{world}/strategies")
    def strategies(world: str, _: Actor = Depends(viewer)) -> list[StrategyView]:
        svc.store.get_world(world)
        with svc.lock(world):
            return svc.engine(world).views()

    @app.get("/worlds/{world}/strategies/{strategy_id}")
    def strategy(world: str, strategy_id: str, _: Actor = Depends(viewer)) -> StrategyView:
        svc.store.get_world(world)
        with svc.lock(world):
            try:
                return svc.engine(world).view(strategy_id)
            except KeyError:
                raise NotFound(
                    f"strategy {strategy_id!r} has not reported to world {world!r}"
                ) from None

    @app.get("/worlds/{world}/activation")
    def activation(world: str, _: Actor = Depends(viewer)) -> dict[str, Any]:
        svc.store.get_world(world)
        with svc.lock(world):  # the seq and the table are read together
            engine = svc.engine(world)
            seq = svc.store.world_seq(world)
            rows = [
                {
                    "strategy_id": v.strategy_id,
                    "active": v.active,
                    "weight": v.weight,
                    "status": v.status,
                    "rank": v.rank,
                }
                for v in engine.views()
            ]
            return {
                "world": world,
                "seq": seq,
                "policy_version": engine.policy_version,
                "strategies": rows,
            }

    @app.get("/worlds/{world}/allocations")
    def allocations(world: str, _: Actor = Depends(viewer)) -> dict[str, Any]:
        svc.store.get_world(world)
        with svc.lock(world):
            return {
                "world": world,
                "seq": svc.store.world_seq(world),
                "weights": svc.engine(world).weights(),
            }

    @app.post("/worlds/{world}/allocations/plan")
    def plan(world: str, who: Actor = Depends(operator)) -> dict[str, Any]:
        svc.store.get_world(world)
        with svc.lock(world):
            engine = svc.engine(world)
            current = engine.weights()
            proposed = engine.proposed_weights()
            base_seq = svc.store.world_seq(world)
        changes = {
            sid: {"from": current.get(sid, 0.0), "to": w}
            for sid, w in proposed.items()
            if abs(current.get(sid, 0.0) - w) > 1e-12
        }
        plan_id = uuid.uuid4().hex
        body = {"current": current, "proposed": proposed, "changes": changes}
        svc.store.save_plan(plan_id, world, base_seq, body)
        svc.store.audit(world, who.name, "plan", {"plan_id": plan_id}, who.request_id)
        return {"world": world, "plan_id": plan_id, "base_seq": base_seq, **body}

    @app.post("/worlds/{world}/allocations/apply")
    def apply(world: str, req: ApplyRequest, who: Actor = Depends(operator)) -> dict[str, Any]:
        base_seq, body, applied = svc.store.get_plan(world, req.plan_id)
        if applied:
            raise HTTPError(409, f"plan {req.plan_id!r} was already applied")

        def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
            seq = svc.store.world_seq(world)
            if seq != base_seq:
                raise HTTPError(
                    409,
                    f"world {world!r} changed since the plan (seq {base_seq} -> {seq}): "
                    "make a new plan",
                )
            weights = {**body["proposed"], **req.overrides}
            max_w = engine.policy.allocation.max_weight
            for sid, w in weights.items():
                if not (0.0 <= w <= max_w):
                    raise HTTPError(422, f"weight of {sid!r} must be in [0, {max_w}], got {w}")
            if sum(weights.values()) > 1.0 + 1e-9:
                raise HTTPError(422, f"weights sum to {sum(weights.values()):.6f} > 1")
            try:
                changes = engine.apply_weights(weights, "allocation apply")
            except ValueError as exc:
                raise HTTPError(422, str(exc)) from None
            detail = {"plan_id": req.plan_id, "weights": weights, "overrides": req.overrides}
            return changes, {
                "actor": who.name,
                "action": "apply",
                "detail": detail,
                "request_id": who.request_id,
            }

        events = svc.write(world, change)
        with svc.store.transaction() as cur:
            svc.store.mark_plan_applied(cur, req.plan_id)
        return {"world": world, "plan_id": req.plan_id, "events": [e.model_dump() for e in events]}

    @app.get("/worlds/{world}/audit")
    def audit(world: str, _: Actor = Depends(viewer)) -> list[dict[str, Any]]:
        svc.store.get_world(world)
        return svc.store.audit_log(world)

    # -- events (Server-Sent Events) ----------------------------------------------------------
    @app.get("/worlds/{world}/events")
    async def events(
        world: str,
        after: int | None = Query(None, ge=0),
        once: bool = False,
        heartbeat: float = Query(15.0, ge=0.1, le=300.0),
        last_event_id: str | None = Header(None),
        _: Actor = Depends(viewer),
    ) -> StreamingResponse:
        await asyncio.to_thread(svc.store.get_world, world)
        start = after
        if start is None and last_event_id:
            if not last_event_id.strip().isdigit():
                raise HTTPError(422, f"Last-Event-ID must be an event seq, got {last_event_id!r}")
            start = int(last_event_id)
        start = start or 0

        async def stream() -> AsyncIterator[str]:
            cursor = start
            idle = 0.0
            while True:
                batch = await asyncio.to_thread(svc.store.events_after, world, cursor)
                for ev in batch:
                    cursor = ev.seq
                    yield f"id: {ev.seq}\nevent: activation\ndata: {ev.model_dump_json()}\n\n"
                if once and not batch:
                    return
                if batch:
                    idle = 0.0
                    continue
                await asyncio.sleep(0.05)
                idle += 0.05
                if idle >= heartbeat:  # keep-alive: proxies keep the connection, and
                    # subscribers (the order gate) know the world is there
                    idle = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


def _describe(errors: Any) -> str:
    """One readable line from pydantic/FastAPI validation errors."""
    parts = []
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def parse_sse(text: str) -> list[tuple[int, dict[str, Any]]]:
    """``(id, data)`` of each event in a Server-Sent Events body.

    >>> parse_sse('id: 3\\nevent: activation\\ndata: {"a": 1}\\n\\n')
    [(3, {'a': 1})]
    """
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "id" in fields and "data" in fields:
            out.append((int(fields["id"]), json.loads(fields["data"])))
    return out
