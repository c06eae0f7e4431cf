"""``run_live_group``: several strategies of one interval on ONE live flow over their shared
feed (``qmtl world run W --shared``).

A group reads the union of its members' symbols once (one feed reader, one hand-off, one
recovery folder) and compiles the union of their graphs into one program
(:func:`dataflows.compiler.build_program`): a node with the same content id, the close
column or ``close.sma(20)`` of two parameter variants, is computed once per symbol for all
the members that use it, as a sweep computes its variants. After that each member is its own
strategy: its own portfolio and gate (keyed by strategy in the flow), its own paper broker
(its costs and execution rule), its own report (``--out`` folder, the world's metrics) in
its own record (``run_id``: the group's). The members share the group's order store (rows
are keyed by strategy) and its link to the world.

Membership is fixed for the life of a group: a member that must stop while the others run
is *muted* (``muted(sid)`` true: its orders and targets are held, its output is not
reported) and keeps being computed until the group ends; a strategy added later starts in a
new group. A group killed with ``kill -9`` resumes from its recovery folder when it is run
again with the same members (``members`` in the folder's record must match).

>>> group_key(["b", "a"]) == group_key(["a", "b"])
True
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.data.seamless import SeamlessDataProvider
from connectors.live.paper_broker import PaperBroker
from connectors.live.source import LiveBarSource, LiveInput, LiveStats
from dataflows.compiler import StrategySpec, build_program, spec_lookback
from dataflows.control import RunControl
from dataflows.live_flow import OrderContext, build_live_flow, traded
from dataflows.recovery import RecoveryMismatch, recovery_config
from qmtl.core.contracts import MetricsUpdate
from qmtl.core.intervals import interval_ns
from qmtl.core.times import parse_time
from qmtl.live.embedded_world import embedded_world
from qmtl.live.handoff import gap_filler, hand_off, open_feed
from qmtl.live.options import LiveError, LiveOptions, LiveResult
from qmtl.live.report import RunReport
from qmtl.live.runner import OrderTally, _open_links, _run_flow, _stop_on_signals
from qmtl.live.start import _check, feed_assembler, feed_calendars, first_live, warmup_bars
from qmtl.runner import make_strategy, to_spec
from qmtl.strategy import Strategy

log = logging.getLogger("qmtl.live")


@dataclass
class Member:
    """One strategy of a group: its id, the strategy (a class or an object), the symbols it
    trades (None: its own ``symbols``) and its ``--out`` folder.

    >>> Member("s", Strategy).symbols is None
    True
    """

    sid: str
    strategy: type[Strategy] | Strategy
    symbols: list[str] | None = None
    out: Path | None = None


def group_key(sids: list[str]) -> str:
    """A short id for the set of strategies ``sids`` (order does not matter).

    >>> len(group_key(["a"]))
    12
    """
    return hashlib.sha256(",".join(sorted(sids)).encode()).hexdigest()[:12]


def group_specs(members: list[Member], o: LiveOptions) -> tuple[list[StrategySpec], list[Any]]:
    """Each member's compiled spec (keyed by its id) and strategy object, with the run's
    cost overrides; every member must have the interval of the first.

    >>> class S(Strategy):
    ...     symbols = ["A"]
    ...     def signal(self, bars):
    ...         return bars.close.sma(3) > 0
    >>> specs, _ = group_specs([Member("a", S), Member("b", S)], LiveOptions())
    >>> [s.key for s in specs], len(build_program(specs).nodes)
    (['a', 'b'], 4)
    """
    specs, objs = [], []
    for m in members:
        s = make_strategy(m.strategy, {})
        if o.cost_bps is not None:
            s.cost_bps = float(o.cost_bps)
        if o.fee_bps is not None:
            s.cost_bps = float(o.fee_bps)
        if o.slippage_bps is not None:
            s.spread_bps = 2.0 * float(o.slippage_bps)
        universe = list(m.symbols or s.symbols)
        if not universe:
            raise LiveError(f"{m.sid}: {s.name} has no symbols")
        if objs and s.interval != objs[0].interval:
            raise LiveError(f"{m.sid}: interval {s.interval} differs from the group's "
                            f"{objs[0].interval} ({members[0].sid}): run it in another group")
        specs.append(to_spec(s, universe, o.periods_per_year, key=m.sid))
        objs.append(s)
    return specs, objs


def run_live_group(
    members: list[Member],
    options: LiveOptions,
    *,
    control: RunControl | None = None,
    stats: LiveStats | None = None,
    muted: Callable[[str], bool] | None = None,
) -> dict[str, LiveResult]:
    """Run ``members`` live on one flow (see the module docstring) until the feed ends, a
    limit, ``control.stop()`` or a signal; each member's result by its id.

    >>> run_live_group([], LiveOptions(paper=True))
    Traceback (most recent call last):
    ...
    qmtl.live.options.LiveError: a group needs at least one strategy
    """
    o = options
    if not members:
        raise LiveError("a group needs at least one strategy")
    _check(o)
    specs, objs = group_specs(members, o)
    by_sid = {sp.key: sp for sp in specs}
    interval = objs[0].interval
    feed_symbols = sorted({x for sp in specs for x in [*sp.symbols, *sp.context]})
    n_warm = max(warmup_bars(o.warmup, s.warmup, spec_lookback(sp))
                 for s, sp in zip(objs, specs, strict=True))
    if n_warm < 0:
        raise LiveError(f"--warmup must be >= 0, got {n_warm}")
    mode = "paper" if o.paper else "live"
    sids = [m.sid for m in members]
    gid = group_key(sids)
    state_dir = Path(o.recovery_dir or o.out or Path.home() / ".qmtl" / f"group-{gid}")
    state_dir.mkdir(parents=True, exist_ok=True)
    data = (o.data if isinstance(o.data, SeamlessDataProvider)
            else SeamlessDataProvider.from_env(o.data, origin=o.origin))
    start_ns = parse_time(o.start) if isinstance(o.start, str) else o.start
    end_ns = parse_time(o.end) if isinstance(o.end, str) else o.end
    source_name = o.source or (
        f"kafka:{o.brokers}/{o.topic}" if o.brokers else f"catalog:{data.catalog.root}")
    params = {sid: {k: getattr(s, k) for k in type(s).parameters()}
              for sid, s in zip(sids, objs, strict=True)}
    fresh = {"run_id": uuid.uuid4().hex[:12], "strategy": f"group:{gid}", "members": sorted(sids),
             "symbols": feed_symbols, "interval": interval, "world": o.world,
             "source": source_name, "params": params}
    try:
        start = hand_off(o, data, feed_symbols, interval, n_warm, start_ns, fresh)
    except RecoveryMismatch as exc:
        raise LiveError(str(exc)) from None
    meta, resuming = start.meta, start.resuming
    if sorted(meta.get("members", [])) != sorted(sids):
        raise LiveError(f"--recovery-dir {o.recovery_dir} holds the group of "
                        f"{meta.get('members')}, not of {sorted(sids)}: use a new directory")
    run_id = meta["run_id"]
    make_feed, dlq_sink = open_feed(o, data, feed_symbols, interval, meta.get("split"), end_ns,
                                    group=o.group or f"qmtl-{o.world}-group-{gid}",
                                    ends=start.ends)
    control = control if control is not None else RunControl()
    stats = stats if stats is not None else LiveStats()
    stats.feed = feed_assembler(o, interval)
    source = LiveBarSource(make_feed, LiveInput(
        symbols=feed_symbols, interval_ns=interval_ns(interval), history=start.history,
        history_end=start.ends, fill_gap=gap_filler(data, interval), max_gap_bars=o.max_gap_bars,
        calendars=feed_calendars(specs[0].calendar, start.history),
        start=start_ns if o.brokers or o.source else None, max_bars=o.max_bars,
        stop_after_idle=o.stop_after_idle, assembler=stats.feed), control, stats)
    is_muted = muted or (lambda _sid: False)

    with contextlib.ExitStack() as stack:
        url = o.url or stack.enter_context(embedded_world(o, state_dir))
        links = _open_links(o, url, state_dir, stack)
        store, poster = links.store, links.poster
        reports: dict[str, RunReport] = {}
        for m, sp in zip(members, specs, strict=True):
            head = {"strategy": m.sid, "params": meta["params"].get(m.sid, params[m.sid]),
                    "symbols": sp.symbols, "interval": interval, "mode": mode,
                    "world": o.world, "run_id": run_id}
            last = store.last_update(o.world, m.sid, run_id) if resuming else None
            reports[m.sid] = RunReport(head, sp.symbols, m.out, _queue(o, links, m.sid),
                                       resuming, last_update=last)
        tally = OrderTally()

        def on_output(out: Any) -> None:
            if not is_muted(out.strategy):
                reports[out.strategy].on_output(out)

        def paper_broker(strategy: str, quiet: bool = False) -> PaperBroker:
            sp = by_sid[strategy]
            return PaperBroker(store, o.world, strategy, fee_bps=sp.cost_bps, quiet=quiet,
                               execution=sp.execution)

        ctx = OrderContext(
            world=o.world, capital=links.capital, book=links.book, record=store.record,
            max_activation_age=o.max_activation_age,
            make_broker=paper_broker if o.paper else None,
            make_paper=None if o.paper else (lambda sid: paper_broker(sid, quiet=True)),
            publish=links.relay.send if links.relay is not None else (lambda _o, _f: None),
            report=tally, on_target=links.targets, shadow=o.shadow, muted=is_muted)
        flow = build_live_flow(specs, source, control, on_output, ctx, dlq_sink,
                               metrics_every=o.metrics_every,
                               signals_from=first_live(meta.get("split"), start.ends))
        log.info("group %s: %d strategies, %d distinct nodes, %d symbols", gid, len(specs),
                 len(build_program(specs).nodes), len(feed_symbols))
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        stack.callback(sys.setswitchinterval, switch)
        with _stop_on_signals(control):
            try:
                _run_flow(flow, o, recovery_config(o.recovery_dir, resuming))
            finally:
                stats.finished = time.monotonic()
                poster.close()
        if control.error is not None:
            raise control.error
        results = {}
        for sid, report in reports.items():
            report.finish({"run": {"live_bars": stats.live_bars, "group": gid,
                                   "group_members": len(sids)}})
            series = report.portfolio()
            results[sid] = LiveResult(
                strategy=sid, run_id=run_id, mode=mode, world=o.world, stats=stats,
                metrics=report.metrics, n_bars=report.n_bars, ts=series["ts"].copy(),
                returns=series["return"].copy(), equity=series["equity"].copy(),
                bars=report.table(), orders=store.orders(o.world, sid),
                fills=store.fills(o.world, sid),
                positions={k: v for k, v in store.positions(o.world, sid).items() if v != 0.0},
                out=report.out, updates=report.updates, capital=links.capital)
    return results


def _queue(o: LiveOptions, links: Any, sid: str) -> Callable[[MetricsUpdate], None]:
    """Queue ``sid``'s metrics updates in the group's store, in the record of its stage."""

    def queue(update: MetricsUpdate) -> None:
        stage = links.book.stage(sid)
        if o.shadow and not traded(links.book, sid):
            update = update.model_copy(update={"mode": "shadow"})
        elif stage is not None:
            update = update.model_copy(
                update={"mode": "paper" if o.paper and stage == "live" else stage})
        if links.store.queue_update(update):
            links.poster.notify()

    return queue


__all__ = ["Member", "group_key", "group_specs", "run_live_group"]
