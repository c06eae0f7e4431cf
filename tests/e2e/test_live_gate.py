"""The order gate in a running loop: orders only while the world keeps the strategy active,
deactivation flattens, and a lost world (cut connection, restarted service) holds every
order until it is back; metrics posted meanwhile arrive once."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid

import httpx
import uvicorn

from qmtl import Strategy
from qmtl.live import LiveOptions, LiveResult, run_live
from tests.e2e.live_helpers import (
    Cross,
    Recorder,
    activate,
    make_data,
    set_policy,
    wait_for,
    write_catalog,
)
from tests.world_api.conftest import TcpProxy, free_port
from world_api.service.app import create_app

STRICT = 'gates: {sharpe: ">= 100"}'
OPEN = "{}"


class Hold(Strategy):
    """Always long both symbols (0.5 each after the gross cap): orders come only from the
    world's decisions, never from the signal."""

    symbols = ["AAA", "BBB"]

    def signal(self, bars):
        return 1.0


class Run(threading.Thread):
    """run_live in a thread; ``result`` or ``error`` when it ends."""

    def __init__(self, options: LiveOptions, recorder: Recorder, strategy=Cross) -> None:
        super().__init__(daemon=True)
        self.options, self.recorder, self.strategy = options, recorder, strategy
        self.result: LiveResult | None = None
        self.error: BaseException | None = None
        self.stats = None

    def run(self) -> None:
        try:
            self.result = run_live(self.strategy, self.options, on_order=self.recorder)
        except BaseException as exc:
            self.error = exc


class World:
    """A WorldService on a fixed port that a test can stop and start again (same store)."""

    def __init__(self, db: str) -> None:
        self.db, self.port = db, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> World:
        app = create_app(self.db, insecure_dev=True)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        assert wait_for(lambda: self.server.started, 10)
        return self

    def stop(self) -> None:
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.server.force_exit = True  # do not wait for the open event streams
        self.thread.join(10)


def options(tmp_path, url: str, **kw) -> LiveOptions:
    base = {"world": "w", "url": url, "paper": True, "data": tmp_path / "catalog",
            "orders_store": str(tmp_path / f"o-{uuid.uuid4().hex[:6]}.db"), "speed": "40/s"}
    return LiveOptions(**{**base, **kw})


def test_orders_only_while_active_and_deactivation_flattens(tmp_path):
    write_catalog(tmp_path / "catalog", make_data(260))
    world = World(str(tmp_path / "w.db")).start()
    try:
        assert httpx.post(f"{world.url}/worlds", json={"id": "w"}).status_code == 201
        set_policy(world.url, "w", STRICT)  # nothing can pass: the strategy stays inactive
        rec = Recorder()
        run = Run(options(tmp_path, world.url), rec, Hold)
        run.start()
        assert wait_for(lambda: httpx.get(f"{world.url}/worlds/w/strategies").json(), 30)
        time.sleep(1.0)  # inactive for a while: bars flow, no orders
        assert not rec.orders
        t_on = time.monotonic()
        set_policy(world.url, "w", OPEN)
        assert wait_for(lambda: len(rec.orders) == 2, 30), "no orders after activation"
        time.sleep(1.0)
        t_off = time.monotonic()
        set_policy(world.url, "w", STRICT)
        assert wait_for(lambda: len(rec.orders) == 4, 30), "no flattening after deactivation"
        time.sleep(1.0)
        control_orders = len(rec.orders)
        run.join(60)
        assert run.error is None, run.error
        res = run.result
        assert res is not None
    finally:
        world.stop()
    assert not rec.between(0, t_on)
    opened = rec.between(t_on, t_off)
    assert sorted(o.symbol for o in opened) == ["AAA", "BBB"]
    assert all(o.target_weight == 0.5 and o.reason == "rebalance" for o in opened)
    flattened = rec.between(t_off, float("inf"))
    assert sorted(o.symbol for o in flattened) == ["AAA", "BBB"]
    assert all(o.target_qty == 0.0 and o.reason.startswith("deactivated") for o in flattened)
    assert len(rec.orders) == control_orders == 4  # nothing after the flattening
    assert res.positions == {}  # flat at the end
    assert len(res.orders) == 4 and len(res.fills) == 4


@contextlib.contextmanager
def proxied_world(tmp_path):
    world = World(str(tmp_path / "w.db")).start()
    proxy = TcpProxy(("127.0.0.1", world.port))
    try:
        assert httpx.post(f"{world.url}/worlds", json={"id": "w"}).status_code == 201
        activate(world.url, "w", "Cross")
        yield world, proxy
    finally:
        proxy.cut()
        world.stop()


def test_a_lost_world_holds_orders_until_it_is_back(tmp_path, caplog):
    """The connection to the world is cut mid-run: no orders while it is away (fail closed),
    orders resume when it is back, and the metrics posted meanwhile arrive."""
    write_catalog(tmp_path / "catalog", make_data(300))
    with proxied_world(tmp_path) as (world, proxy):
        rec = Recorder()
        url = f"http://127.0.0.1:{proxy.port}"
        run = Run(options(tmp_path, url, max_activation_age=1.0), rec)
        run.start()
        assert wait_for(lambda: len(rec.orders) >= 2, 30), "no orders while active"
        t_cut = time.monotonic()
        proxy.cut()
        time.sleep(2.5)
        t_back = time.monotonic()
        proxy.restore()
        run.join(60)
        assert run.error is None, run.error
        res = run.result
        view = httpx.get(f"{world.url}/worlds/w/strategies/Cross").json()
    assert not rec.between(t_cut + 0.3, t_back)  # held while the world was away
    assert rec.between(t_back, float("inf")), "orders did not resume"
    assert any("no connection to world 'w'" in r.getMessage() for r in caplog.records)
    # metrics: the world has the final state of this run (updates were retried, not lost):
    # its paper record sums its runs, activate()'s one bar and this run's
    assert view["n_bars"] == res.n_bars + 1
    assert view["records"]["paper"]["runs"] == sorted(["pre", res.run_id])
    keys = [(o.symbol, o.ts) for o in res.orders]
    assert len(keys) == len(set(keys))


def test_a_restarted_world_service_is_survived(tmp_path):
    write_catalog(tmp_path / "catalog", make_data(300))
    world = World(str(tmp_path / "w.db")).start()
    try:
        assert httpx.post(f"{world.url}/worlds", json={"id": "w"}).status_code == 201
        activate(world.url, "w", "Cross")
        rec = Recorder()
        run = Run(options(tmp_path, world.url, max_activation_age=1.0), rec)
        run.start()
        assert wait_for(lambda: len(rec.orders) >= 2, 30)
        t_down = time.monotonic()
        world.stop()
        time.sleep(2.0)
        t_up = time.monotonic()
        world.start()  # same port, same store: activation and metrics are still there
        run.join(60)
        assert run.error is None, run.error
        res = run.result
        view = httpx.get(f"{world.url}/worlds/w/strategies/Cross").json()
    finally:
        world.stop()
    # the gate holds once it sees the stream drop, and at the latest once the last confirmed
    # activation is older than max_activation_age (1 s): how soon uvicorn closes the stream
    # after a forced exit depends on the machine's load, so the bound is the staleness one
    assert not rec.between(t_down + 1.0 + 0.3, t_up)
    assert rec.between(t_up, float("inf"))
    # the paper record sums its runs: activate()'s one bar and this run's, all of them
    assert view["n_bars"] == res.n_bars + 1 and view["active"]
