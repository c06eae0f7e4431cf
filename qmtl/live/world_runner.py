"""``qmtl world run W``: one long-running process that runs every strategy world ``W``
trades (stage paper or live; active in a world without stages), from the artifacts the world
holds (``qmtl.artifact``), and follows the world as it promotes, demotes and overrides.

Every heartbeat period the runner reads the world's views, asks for the leases of the
strategies the world trades (``POST /worlds/W/runners/R/heartbeat``, with its report: each
strategy's state, live bars, last bar and lag) and gets those it may run
(``world_api.service.runner_store``: each strategy by one runner, split fairly). For a new
lease it fetches the artifact, rebuilds the strategy from the stored text and checks its
graph id (``qmtl.artifact.verify``): a changed strategy is refused with the message
``strategy X changed since it was evaluated: graph id A != B`` and the others keep
running. Each strategy runs as a live run (:func:`qmtl.live.run_live`, its own thread, its
own Bytewax flow and recovery folder ``STATE/runs/<id>``) started and stopped while the
others run; its order path follows its stage inside the run (held, paper broker, orders)
as a single live run's does. A lost lease (demoted, overridden inactive for good, taken
over) stops the run at the next heartbeat; a runner that cannot renew its leases within
``ttl`` stops every run (fail closed: another runner may take them over).

The runner also follows the world's event stream (``qmtl.live.world_events``): an
activation or stage event makes it step at once rather than at its next heartbeat.

Recovery: each run snapshots into its recovery folder; a runner killed with ``kill -9``
and restarted with the same ``--state-dir`` resumes every strategy from its snapshots
(:mod:`dataflows.recovery`), and the world and the order store drop what is emitted twice.
Runners of one world that share a ``--state-dir`` resume each other's strategies when they
take them over.

>>> RunnerOptions(world="w", url="http://h").period
5.0
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.live.source import LiveStats
from dataflows.control import RunControl
from qmtl.artifact import ArtifactChanged, verify
from qmtl.core.errors import QmtlError
from qmtl.live.deploy import is_wanted, plan, wanted
from qmtl.live.options import LiveOptions, LiveResult
from qmtl.live.runner import run_live
from qmtl.live.world_events import EventWaker
from world_api import runner_client as rc
from world_api.client import WorldServiceClient, WorldServiceError

log = logging.getLogger("qmtl.runner")


@dataclass
class RunnerOptions:
    """How a world runner runs: its world and service, its identity and state folder, and
    how long its leases last (``ttl`` s; it heartbeats every ``heartbeat`` s, default
    ``ttl / 3``).

    >>> RunnerOptions(world="w", url="u", ttl=9).period
    3.0
    """

    world: str
    url: str
    token: str | None = None
    runner_id: str | None = None
    state_dir: Path | None = None
    ttl: float = 15.0
    heartbeat: float | None = None
    until_done: bool = False  # exit once every run it started has ended (a bounded feed)

    @property
    def period(self) -> float:
        """Seconds between heartbeats."""
        return self.heartbeat if self.heartbeat is not None else self.ttl / 3


def run_dir_name(sid: str) -> str:
    """A folder name for strategy ``sid`` (its safe characters and a hash of the id).

    >>> run_dir_name("Cross-fast=3")
    'Cross-fast=3-ccab7d32'
    >>> run_dir_name("../x")[:4]
    '.._x'
    """
    safe = re.sub(r"[^A-Za-z0-9_.=,+-]", "_", sid)[:60]
    return f"{safe}-{hashlib.sha256(sid.encode()).hexdigest()[:8]}"


@dataclass
class StrategyRun:
    """One strategy's live run inside the runner: its thread, stop handle and counters."""

    sid: str
    artifact_id: str
    control: RunControl
    stats: LiveStats
    thread: threading.Thread
    started: float = field(default_factory=time.time)
    result: LiveResult | None = None
    error: BaseException | None = None

    def report(self, now: float) -> dict[str, Any]:
        """What the heartbeat says of this run.

        >>> r = StrategyRun("s", "a", RunControl(), LiveStats(), threading.Thread())
        >>> r.report(0.0)["state"], r.report(0.0)["last_bar"]
        ('running', None)
        """
        last = self.stats.last_bar
        return {
            "state": "running",
            "artifact": self.artifact_id,
            "live_bars": self.stats.live_bars,
            "warmup_bars": self.stats.warmup_bars,
            "last_bar": last,
            "lag_s": None if last is None else round(now - last / 1e9, 3),
        }


class WorldRunner:
    """The runner's state and one step of its loop (see the module docstring); ``live`` is
    the template of every strategy's :class:`LiveOptions` (feed, paper, warm-up...)."""

    def __init__(
        self,
        o: RunnerOptions,
        live: LiveOptions,
        on_event: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.o = o
        self.live = live
        self.runner_id = o.runner_id or f"{socket.gethostname()}-{os.getpid()}"
        self.state = Path(o.state_dir or Path.home() / ".qmtl" / "runner" / o.world)
        self.state.mkdir(parents=True, exist_ok=True)
        self.client = WorldServiceClient(o.url, o.token, timeout=max(2.0, o.ttl / 3))
        self.runs: dict[str, StrategyRun] = {}
        self.refused: dict[str, str] = {}  # strategy -> artifact id refused (and why, below)
        self.why: dict[str, str] = {}
        self.failed: dict[str, tuple[float, int]] = {}  # strategy -> (retry after, failures)
        self.held: list[str] = []
        self.ended: list[str] = []  # strategies whose run ended with its feed
        self.shadowed: set[str] = set()  # run by --shadow only: the world does not trade them
        self._last_ok = time.monotonic()
        self._on_event = on_event or (lambda *_: None)

    def _event(self, sid: str, what: str, detail: str = "") -> None:
        (log.warning if what in ("refused", "failed") else log.info)(
            "%s: %s%s", sid, what, f": {detail}" if detail else ""
        )
        self._on_event(sid, what, detail)

    # -- one step --------------------------------------------------------------------------
    def step(self) -> list[str]:
        """Reap ended runs, heartbeat, then start and stop runs for the leases held now;
        returns the strategies held."""
        self._reap()
        now = time.monotonic()
        try:
            views = self.client.strategies(self.o.world)
            self.shadowed = {
                str(v["strategy_id"]) for v in views if self.live.shadow and not is_wanted(v)
            }
            artifacts = {
                a["strategy_id"]: a["artifact_id"] for a in rc.artifacts(self.client, self.o.world)
            }
            # no artifact: nothing to run yet; refused for this artifact: let the lease go
            want = [
                s
                for s in wanted(views, self.live.shadow)
                if s in artifacts and self.refused.get(s) != artifacts[s]
            ]
            self.held = rc.heartbeat(
                self.client,
                self.o.world,
                self.runner_id,
                want,
                self.o.ttl,
                self.report(),
                running=sorted(self.runs),
            )
            self._last_ok = now
        except WorldServiceError as exc:
            log.warning("world %r: heartbeat failed: %s", self.o.world, exc)
            if now - self._last_ok > 0.8 * self.o.ttl and self.runs:
                log.warning("no lease renewed for %.1f s: stopping every run", now - self._last_ok)
                self.held = []
                self.stop_all()
            return self.held
        start, stop = plan(self.held, self.runs, self.refused, artifacts)
        for sid, run in list(self.runs.items()):  # resubmitted: run the new artifact instead
            if sid in artifacts and artifacts[sid] != run.artifact_id and sid not in stop:
                self._stop(sid, f"a new artifact {artifacts[sid][:12]} was stored")
        start, stop = plan(self.held, self.runs, self.refused, artifacts)
        for sid in stop:
            self._stop(sid, "lease given up (demoted, deactivated or taken over)")
        due = [s for s in start if time.monotonic() >= self.failed.get(s, (0.0, 0))[0]]
        if due:
            self._start_many(due, artifacts)
        return self.held

    def report(self) -> dict[str, Any]:
        """The heartbeat's report: the ttl, each run, each refused strategy and why."""
        now = time.time()
        return {
            "ttl": self.o.ttl,
            "strategies": {
                s: {**r.report(now), "shadow": s in self.shadowed}
                for s, r in sorted(self.runs.items())
            },
            "refused": {s: self.why.get(s, "") for s in sorted(self.refused)},
        }

    def _start_many(self, sids: list[str], artifacts: dict[str, str]) -> None:
        """Start the runs of ``sids`` (``artifacts``: each one's artifact id now)."""
        for sid in sids:
            self._start(sid)

    def _load(self, sid: str) -> tuple[dict[str, Any], Any] | None:
        """``sid``'s artifact and the strategy rebuilt from it, or None (refused: why)."""
        try:
            doc = rc.artifact(self.client, self.o.world, sid)
        except WorldServiceError as exc:
            log.warning("%s: artifact not read: %s", sid, exc)
            return None
        try:
            return doc, verify(doc, self.state / "artifacts")
        except ArtifactChanged as exc:
            self.refused[sid], self.why[sid] = str(doc["id"]), str(exc)
            self._event(sid, "refused", str(exc))
        except (QmtlError, OSError, KeyError, TypeError) as exc:  # ArtifactError included
            self.refused[sid] = str(doc.get("id", "")) if isinstance(doc, dict) else ""
            self.why[sid] = f"cannot load its artifact: {exc}"
            self._event(sid, "refused", self.why[sid])
        return None

    def _start(self, sid: str) -> None:
        loaded = self._load(sid)
        if loaded is None:
            return
        doc, s = loaded
        folder = self._folder(sid, str(doc["id"]))
        opts = dataclasses.replace(
            self.live,
            world=self.o.world,
            url=self.o.url,
            token=self.o.token,
            strategy_id=sid,
            symbols=list(doc["data"]["symbols"]),
            recovery_dir=folder,
            out=folder / "out" if self.live.out is None else self.live.out / run_dir_name(sid),
        )
        control, stats = RunControl(), LiveStats()
        run = StrategyRun(sid, str(doc["id"]), control, stats, threading.Thread())

        def go() -> None:
            try:
                run.result = run_live(s, opts, control=control, stats=stats)
            except BaseException as exc:  # reported by _reap
                run.error = exc

        run.thread = threading.Thread(target=go, name=f"run-{sid}", daemon=True)
        self.runs[sid] = run
        self.refused.pop(sid, None)
        self.why.pop(sid, None)
        run.thread.start()
        self._event(sid, "started", f"artifact {doc['id'][:12]}, graph {doc['graph_id']}")

    def _folder(self, sid: str, artifact: str) -> Path:
        """The run folder of ``sid`` (snapshots, order store, run folder), marked with the
        artifact it runs; one left by another artifact is kept aside as
        ``<folder>.<its artifact id>``: a new artifact starts afresh."""
        folder = self.state / "runs" / run_dir_name(sid)
        mark = folder / "artifact-id"
        old = mark.read_text().strip() if mark.is_file() else None
        if old is not None and old != artifact:
            folder.rename(folder.with_name(f"{folder.name}.{old[:12]}"))
            self._event(sid, "new artifact", f"the runs of {old[:12]} are kept aside")
        folder.mkdir(parents=True, exist_ok=True)
        mark.write_text(artifact)
        return folder

    def _stop(self, sid: str, why: str) -> None:
        run = self.runs.get(sid)
        if run is None:
            return
        run.control.stop()
        run.thread.join(timeout=60)  # it finishes the bars in flight
        self.runs.pop(sid, None)
        self._event(sid, "stopped", why)

    def _reap(self) -> None:
        for sid, run in list(self.runs.items()):
            if run.thread.is_alive():
                continue
            del self.runs[sid]
            self._ended(sid, run.error, run.artifact_id)

    def _ended(self, sid: str, error: BaseException | None, artifact_id: str) -> None:
        """``sid``'s run is over: a failure is retried after a doubling wait (to 60 s); a
        feed that ended leaves nothing more to run on this artifact."""
        if error is not None:
            _, n = self.failed.get(sid, (0.0, 0))
            wait = min(60.0, self.o.period * 2**n)
            self.failed[sid] = (time.monotonic() + wait, n + 1)
            self._event(sid, "failed", f"{error} (retried in {wait:.0f} s)")
        else:
            self.refused[sid], self.why[sid] = artifact_id, "its feed ended"
            self.ended.append(sid)
            self._event(sid, "ended")

    def stop_all(self) -> None:
        """Stop every run (each finishes the bars in flight)."""
        for run in self.runs.values():
            run.control.stop()
        for sid in list(self.runs):
            self._stop(sid, "runner stopping")

    # -- the loop --------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Step every heartbeat period until ``stop`` is set; then stop every run and give
        the leases back."""
        wake = threading.Event()
        waker = EventWaker(self.o.url, self.o.token, self.o.world, wake, self.o.period).start()
        try:
            while not stop.is_set():
                wake.clear()
                self.step()
                if self.o.until_done and self.ended and not self.runs:
                    break
                deadline = time.monotonic() + self.o.period
                while not (stop.is_set() or wake.is_set()) and time.monotonic() < deadline:
                    stop.wait(0.05)  # a world event (wake) steps at once
        finally:
            waker.close()
            self.stop_all()
            with contextlib.suppress(WorldServiceError):
                rc.leave(self.client, self.o.world, self.runner_id)
            self.client.close()
