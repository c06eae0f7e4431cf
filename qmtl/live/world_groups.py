"""``qmtl world run W --shared``: the runner's strategies of one interval run as one
shared-feed group (:mod:`qmtl.live.group`: one feed reader, one Bytewax flow, a node shared
by several strategies computed once) instead of a live run per strategy.

The strategies started at one step (the runner's first step holds them all) form one group
per interval, in its recovery folder ``STATE/groups/<group id>`` (the id of its members and
their artifacts; ``members.json`` lists them). A group's membership is fixed: a strategy
started later (promoted, a new lease, a new artifact) starts a new group; a strategy stopped
(lease lost, demoted, a new artifact) is muted in its group (its orders and targets held,
its output no longer reported) and the group stops once all its members are; a muted
member leased again with the same artifact is unmuted. A runner killed with ``kill -9`` and
restarted with the same ``--state-dir`` resumes each recorded group whose members it holds
again, with the same artifacts, from its snapshots; the strategies of a group it cannot
resume whole start in a new group, afresh.

>>> GroupRun("g", {"a": "x"}, RunControl(), LiveStats(), threading.Thread()).live()
['a']
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors.live.source import LiveStats
from dataflows.control import RunControl
from qmtl.live.group import Member, group_key, run_live_group
from qmtl.live.options import LiveResult
from qmtl.live.world_runner import StrategyRun, WorldRunner, run_dir_name


@dataclass
class GroupRun:
    """One group inside the runner: its members (strategy -> artifact id), its thread and
    stop handle, the members it holds muted."""

    gid: str
    members: dict[str, str]
    control: RunControl
    stats: LiveStats
    thread: threading.Thread
    muted: set[str] = field(default_factory=set)
    results: dict[str, LiveResult] | None = None
    error: BaseException | None = None

    def live(self) -> list[str]:
        """The members not muted, sorted."""
        return sorted(s for s in self.members if s not in self.muted)


class SharedWorldRunner(WorldRunner):
    """A :class:`WorldRunner` that runs its strategies in shared-feed groups (see the
    module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups: dict[str, GroupRun] = {}

    def _start_many(self, sids: list[str], artifacts: dict[str, str]) -> None:
        pending = []
        for sid in sids:  # leased again, same artifact: unmuted in its running group
            g = next((g for g in self.groups.values() if sid in g.muted
                      and g.members[sid] == artifacts.get(sid) and g.thread.is_alive()), None)
            if g is None:
                pending.append(sid)
                continue
            g.muted.discard(sid)
            self.runs[sid] = StrategyRun(sid, g.members[sid], g.control, g.stats, g.thread)
            self._event(sid, "started", f"unmuted in group {g.gid}")
        loaded = {sid: got for sid in pending if (got := self._load(sid)) is not None}
        root = self.state / "groups"
        for doc in sorted(root.glob("*/members.json")):  # resume a recorded group whole
            members = json.loads(doc.read_text())["members"]
            if all(s in loaded and str(loaded[s][0]["id"]) == a for s, a in members.items()):
                self._launch({s: loaded.pop(s) for s in members})
        by_interval: dict[str, dict[str, Any]] = {}
        for sid, got in loaded.items():
            by_interval.setdefault(str(got[1].interval), {})[sid] = got
        for chunk in by_interval.values():
            self._launch(chunk)

    def _launch(self, chunk: dict[str, tuple[dict[str, Any], Any]]) -> None:
        sids = sorted(chunk)
        arts = {sid: str(chunk[sid][0]["id"]) for sid in sids}
        gid = group_key([f"{sid}@{arts[sid]}" for sid in sids])
        folder = self.state / "groups" / gid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "members.json").write_text(json.dumps({"members": arts}, indent=1))
        members = [
            Member(sid, chunk[sid][1], list(chunk[sid][0]["data"]["symbols"]),
                   out=self._out(folder, sid))
            for sid in sids
        ]
        opts = dataclasses.replace(self.live, world=self.o.world, url=self.o.url,
                                   token=self.o.token, strategy_id=None, symbols=None,
                                   recovery_dir=folder, out=None)
        g = GroupRun(gid, arts, RunControl(), LiveStats(), threading.Thread())

        def go() -> None:
            try:
                g.results = run_live_group(members, opts, control=g.control, stats=g.stats,
                                           muted=g.muted.__contains__)
            except BaseException as exc:  # reported by _reap
                g.error = exc

        g.thread = threading.Thread(target=go, name=f"group-{gid}", daemon=True)
        self.groups[gid] = g
        for sid in sids:
            self.runs[sid] = StrategyRun(sid, arts[sid], g.control, g.stats, g.thread)
            self.refused.pop(sid, None)
            self.why.pop(sid, None)
        g.thread.start()
        for sid in sids:
            self._event(sid, "started", f"artifact {arts[sid][:12]}, group {gid} of {len(sids)}")

    def _out(self, folder: Path, sid: str) -> Path:
        """A member's ``--out`` folder: ``--out``/<its run folder name>, else in its group's."""
        name = run_dir_name(sid)
        return self.live.out / name if self.live.out is not None else folder / "out" / name

    def group_of(self, sid: str) -> GroupRun | None:
        """The running group ``sid`` runs in (not muted), if any."""
        run = self.runs.get(sid)
        return next((g for g in self.groups.values() if run is not None
                     and g.control is run.control), None)

    def _stop(self, sid: str, why: str) -> None:
        g = self.group_of(sid)
        if g is None:
            return
        g.muted.add(sid)
        self.runs.pop(sid, None)
        self._event(sid, "stopped", f"{why} (muted in group {g.gid})")
        if not g.live():  # nothing left to trade: the group stops after the bars in flight
            g.control.stop()
            g.thread.join(timeout=60)
            self.groups.pop(g.gid, None)

    def _reap(self) -> None:
        for gid, g in list(self.groups.items()):
            if g.thread.is_alive():
                continue
            del self.groups[gid]
            for sid in g.live():
                if sid not in self.runs:
                    continue
                del self.runs[sid]
                self._ended(sid, g.error, g.members[sid])

__all__ = ["GroupRun", "SharedWorldRunner"]
