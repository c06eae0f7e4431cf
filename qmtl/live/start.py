"""How a live run starts, before anything connects (pure: no I/O): its warm-up, its first
live bar, the checks of its options, and what a world's refusal tells the user to do.

>>> warmup_bars(None, None, 39)
39
"""

from __future__ import annotations

from typing import Any

from connectors.data.calendars import Calendar
from connectors.live.assembler import FeedAssembler
from connectors.live.world_link import WorldUnavailable
from qmtl.live.options import LiveError, LiveOptions


def warmup_bars(option: int | None, strategy: int | None, lookback: int) -> int:
    """Bars of history a live run warms up on: ``--warmup``, else the strategy's ``warmup``,
    else the graph's look-back: what a backtest from the same ``--start`` warms up on, so
    that both give the same returns (EMA-like kernels remember every bar they saw).

    >>> warmup_bars(None, None, 25), warmup_bars(None, 40, 25), warmup_bars(3, 40, 25)
    (25, 40, 3)
    """
    if option is not None:
        return option
    return strategy if strategy is not None else lookback


def first_live(split: int | None, ends: dict[str, int]) -> int | None:
    """The first live bar time: after the hand-off's ``split`` (``--start`` - 1, or where
    the in-process feed starts), else after the latest history end; None without history.
    Bars before it only warm the kernels up: the book starts flat there, as a backtest's
    does at ``--start``.

    >>> first_live(99, {"A": 90}), first_live(None, {"A": 90, "B": 95}), first_live(None, {})
    (100, 96, None)
    """
    if split is not None:
        return int(split) + 1
    return max(ends.values()) + 1 if ends else None


def feed_calendars(calendar: Calendar | None, history: dict[str, Any]) -> dict[str, Calendar]:
    """The calendar each symbol's hand-off gap is judged on, by the rule ``qmtl data check``
    uses (:func:`connectors.data.quality.find_gaps`): the strategy's calendar when it names
    one (``calendar = "XNYS"`` or ``--calendar XNYS``: a market holiday is no gap), else
    ``auto`` resolved on the symbol's history (weekdays when it has no weekend bar).

    >>> import numpy as np
    >>> day = 86_400 * 10**9
    >>> weekdays = {"A": {"ts": np.array([4, 5, 6, 7, 8, 11]) * day}}   # 1970-01-05 a Monday
    >>> feed_calendars(None, weekdays)["A"].describe()
    'weekdays (inferred)'
    >>> feed_calendars(Calendar.parse("XNYS"), weekdays)["A"].kind
    'XNYS'
    """
    if calendar is not None:
        return {k: calendar for k in history}
    return {k: Calendar().resolve(v["ts"]) for k, v in history.items()}


def feed_assembler(o: LiveOptions, interval: str) -> FeedAssembler:
    """How the feed's messages become bars of the strategy's ``interval``: ``--feed trades``
    (aggregated by event time with ``--lateness``, ``--late``, ``--empty``) or bars, finer
    ones (``--feed-interval``) resampled.

    >>> feed_assembler(LiveOptions(feed="trades", lateness=2.5), "1m").lateness
    2500000000
    >>> feed_assembler(LiveOptions(feed="ticks"), "1m")
    Traceback (most recent call last):
    ...
    qmtl.live.options.LiveError: --feed: feed kind must be bars or trades, got 'ticks'
    """
    if o.feed == "trades" and o.feed_interval:
        raise LiveError("--feed-interval is for a feed of bars: trades have no interval")
    if not o.lateness >= 0:
        raise LiveError(f"--lateness must be >= 0 seconds, got {o.lateness}")
    try:
        return FeedAssembler(interval, o.feed, o.feed_interval, round(o.lateness * 10**9),
                             o.late, o.empty)
    except ValueError as exc:
        flag = "--feed-interval" if "resample" in str(exc) else (
            "--late" if "late must" in str(exc) else "--empty" if "empty" in str(exc)
            else "--feed")
        raise LiveError(f"{flag}: {exc}") from None


def world_refused(exc: WorldUnavailable, world: str, url: str) -> str:
    """The error of a world service that refused the run's first request, with what to do
    (for a command-line user: its options, not HTTP headers).

    >>> e = WorldUnavailable("GET /worlds/local: 404: unknown world 'local'"); e.status = 404
    >>> print(world_refused(e, "local", "http://h:8600"))
    world 'local': GET /worlds/local: 404: unknown world 'local'; create it with `qmtl world \
create local --url http://h:8600`, or name another with --world
    >>> e = WorldUnavailable("GET /worlds/w: 401: missing bearer token: pass 'Authorization: ..."
    ...                      ); e.status, e.detail = 401, "missing bearer token: pass ..."
    >>> print(world_refused(e, "w", "http://h:8600"))
    world 'w': http://h:8600 answered 401 (missing bearer token): pass a token with --token or \
set QMTL_TOKEN
    """
    if exc.status == 401:
        why = exc.detail.split(":")[0] if exc.detail else "unauthorized"
        return (
            f"world {world!r}: {url} answered 401 ({why}): pass a token with --token or "
            "set QMTL_TOKEN"
        )
    hint = ""
    if exc.status == 404:
        hint = (
            f"; create it with `qmtl world create {world} --url {url}`, or name another "
            "with --world"
        )
    elif exc.status == 403:
        hint = "; the token's role may not read this world: --token with a viewer token or more"
    return f"world {world!r}: {exc}{hint}"


def _check(o: LiveOptions) -> None:
    """Options that cannot work, each with what to do instead."""
    if not o.paper and o.brokers is None:
        raise LiveError(
            "--mode live without --paper sends real orders to the orders topic: give "
            "--brokers, or add --paper to fill them on the paper broker"
        )
    if o.max_bars is not None and o.max_bars < 1:
        raise LiveError(f"--max-bars must be >= 1, got {o.max_bars}")
    if o.workers < 1:
        raise LiveError(f"--workers must be >= 1, got {o.workers}")
    for name in ("slippage_bps", "fee_bps"):
        value = getattr(o, name)
        if value is not None and not value >= 0:
            raise LiveError(f"--{name.replace('_', '-')} must be >= 0 bp, got {value}")
