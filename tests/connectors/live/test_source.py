"""The live source's hand-off and screening, over a list of messages (the Kafka path is in
tests/e2e)."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.live.bar_codec import encode_bar
from connectors.live.feeds import CatalogFeed, RawMessage, Speed
from connectors.live.source import HandOffGap, LiveInput, LiveStats, _LivePartition
from dataflows.control import RunControl

DAY = 86_400 * 10**9


def bars(days, close=100.0):
    days = np.asarray(days, dtype=np.int64)
    n = len(days)
    return {"ts": days * DAY, "open": np.full(n, close), "high": np.full(n, close + 1),
            "low": np.full(n, close - 1), "close": np.full(n, close), "volume": np.ones(n)}


class ListFeed:
    """Messages handed out in polls of ``per_poll``."""

    topic = "t"

    def __init__(self, messages, per_poll=100):
        self.messages, self.per_poll, self.at = messages, per_poll, 0
        self.exhausted = False

    def poll(self, max_messages, timeout):
        out = self.messages[self.at : self.at + min(self.per_poll, max_messages)]
        self.at += len(out)
        self.exhausted = self.at >= len(self.messages)
        return out

    def positions(self):
        return {0: self.at}

    def commit(self, positions):
        pass

    def status(self):
        return None

    def close(self):
        pass


def msgs(*pairs):
    """(symbol, day) -> JSON messages at offsets 0.."""
    out = []
    for i, (sym, day) in enumerate(pairs):
        row = {k: v[0] for k, v in bars([day]).items()}
        out.append(RawMessage(0, i, sym.encode(), encode_bar(row)))
    return out


def drain(part):
    items = []
    while True:
        try:
            items += part.next_batch()
        except StopIteration:
            return items


def source(messages, per_poll=100, **kw):
    spec = LiveInput(symbols=["A", "B"], interval_ns=DAY, **kw)
    return _LivePartition(ListFeed(messages, per_poll), spec, RunControl(), LiveStats(), None)


def bar_days(items, symbol):
    return [int(t // DAY) for kind, (s, b) in ((k, v) for k, v in items if k == "bar")
            if s == symbol for t in b["ts"]]


def test_history_first_then_the_feed_without_the_overlap():
    hist = {"A": bars([1, 2, 3]), "B": bars([1, 2, 3])}
    part = source(msgs(("A", 2), ("A", 3), ("A", 4), ("B", 3), ("B", 4)), history=hist,
                  history_end={"A": 3 * DAY, "B": 3 * DAY})
    items = drain(part)
    assert bar_days(items, "A") == [1, 2, 3, 4] and bar_days(items, "B") == [1, 2, 3, 4]
    assert part.stats.overlap == 3 and part.stats.warmup_bars == 6
    assert part.state.live_bars == 2 and not [i for i in items if i[0] == "dlq"]


def test_duplicates_out_of_order_and_unknown_symbols_are_dead_letters():
    part = source(msgs(("A", 1), ("A", 2), ("A", 2), ("A", 1), ("Z", 3), ("A", 3)))
    items = drain(part)
    assert bar_days(items, "A") == [1, 2, 3]
    reasons = [rec["reason"] for kind, rec in items if kind == "dlq"]
    assert [r.split(" ")[0] for r in reasons] == ["duplicate", "out-of-order", "unknown"]
    assert [rec["offset"] for kind, rec in items if kind == "dlq"] == [2, 3, 4]
    assert part.stats.dead_letters == 3


def test_batching_of_the_polls_does_not_change_what_is_used():
    messages = msgs(*[(s, d) for d in range(1, 30) for s in "AB"])
    whole = drain(source(messages, per_poll=1000))
    ones = drain(source(messages, per_poll=1))
    for s in "AB":
        assert bar_days(whole, s) == bar_days(ones, s) == list(range(1, 30))


def test_a_gap_is_filled_from_history_or_stops_the_run_naming_it():
    hist = {"A": bars([1, 2])}
    filled = source(msgs(("A", 6)), history=hist, history_end={"A": 2 * DAY},
                    fill_gap=lambda s, a, b: bars([3, 4, 5]))
    assert bar_days(drain(filled), "A") == [1, 2, 3, 4, 5, 6]
    assert filled.stats.gap_filled == 3
    part = source(msgs(("A", 6)), history=hist, history_end={"A": 2 * DAY},
                  fill_gap=lambda s, a, b: bars([3]))
    with pytest.raises(HandOffGap, match=r"A: gap .* 1970-01-04.* 1970-01-07.* \(2 bars"):
        part._read()
    tolerant = source(msgs(("A", 6)), history=hist, history_end={"A": 2 * DAY},
                      max_gap_bars=3)
    assert bar_days(drain(tolerant), "A") == [1, 2, 6]


def test_max_bars_stops_exactly_and_the_state_resumes():
    messages = msgs(*[("A", d) for d in range(1, 11)])
    part = source(messages, per_poll=3, max_bars=4)
    assert bar_days(drain(part), "A") == [1, 2, 3, 4]
    state = part.snapshot()
    assert state["live_bars"] == 4 and state["last_ts"] == {"A": 4 * DAY}
    spec = LiveInput(symbols=["A", "B"], interval_ns=DAY)
    feed = ListFeed(messages)
    feed.at = 3  # a feed resumed at an earlier offset: the repeated bar 4 is a duplicate
    again = _LivePartition(feed, spec, RunControl(), LiveStats(), state)
    items = drain(again)
    assert bar_days(items, "A") == list(range(5, 11))
    assert [rec["reason"].split(" ")[0] for kind, rec in items if kind == "dlq"] == ["duplicate"]


def test_in_process_feed_paces_bar_times():
    clock = [0.0]
    feed = CatalogFeed.from_memory({"A": bars([1, 2, 3]), "B": bars([1, 3])}, speed="2/s")
    feed._clock, feed._sleep = (lambda: clock[0]), (lambda dt: clock.__setitem__(0,
                                                                                  clock[0] + dt))
    feed._t0 = 0.0
    got = []
    while not feed.exhausted:
        got += [(clock[0], m.bars[0][0], int(m.bars[0][1]["ts"][0] // DAY))
                for m in feed.poll(10, 10.0)]
    assert got == [(0.0, "A", 1), (0.0, "B", 1), (0.5, "A", 2), (1.0, "A", 3), (1.0, "B", 3)]
    assert Speed.parse("60x").delay(60 * 10**9, 0, 0) == 1.0


def test_a_weekend_is_not_a_gap_for_a_weekday_market():
    from connectors.data.quality import Calendar

    # 1970-01-05 was a Monday: two weeks of weekday bars, then the next Monday live
    weekdays = [d for d in range(4, 18) if (d + 3) % 7 < 5]
    hist = {"A": bars(weekdays)}
    cal = {"A": Calendar().resolve(hist["A"]["ts"])}
    assert cal["A"].kind == "weekdays"
    monday = 18 if (18 + 3) % 7 == 0 else None
    part = source(msgs(("A", monday)), history=hist, history_end={"A": weekdays[-1] * DAY},
                  calendars=cal)
    assert bar_days(drain(part), "A")[-1] == monday and part.stats.gap_filled == 0
    with pytest.raises(HandOffGap, match="2 bars"):  # Monday and Tuesday missing: a gap
        source(msgs(("A", monday + 2)), history=hist, history_end={"A": weekdays[-1] * DAY},
               calendars=cal)._read()


def test_a_market_holiday_is_not_a_gap_on_the_exchange_calendar():
    """GOOG's history ends Friday 2011-12-30; Monday 2 January 2012 was an NYSE holiday, so
    the first live bar, Tuesday 3 January, follows without a gap on the XNYS calendar (the
    rule of `qmtl data check --calendar XNYS`); on weekdays alone it is one bar missing."""
    from connectors.data.calendars import Calendar
    from connectors.data.quality import check_bars
    from qmtl.live.start import feed_calendars

    d = np.datetime64("1970-01-01")
    days = np.busday_offset("2011-11-01", np.arange(60), roll="forward")
    days = days[days <= np.datetime64("2011-12-30")]
    days = days[days != np.datetime64("2011-11-24")]  # Thanksgiving
    hist = {"A": bars([int((x - d).astype(int)) for x in days])}
    first = int((np.datetime64("2012-01-03") - d).astype(int))
    end = int(hist["A"]["ts"][-1])
    nyse = feed_calendars(Calendar.parse("XNYS"), hist)
    part = source(msgs(("A", first)), history=hist, history_end={"A": end}, calendars=nyse)
    assert bar_days(drain(part), "A")[-1] == first and part.stats.gap_filled == 0
    together = {k: np.append(v, v[-1]) for k, v in hist["A"].items()}
    together["ts"][-1] = first * DAY
    assert not check_bars(together, "1d", Calendar.parse("XNYS"))  # data check agrees
    assert check_bars(together, "1d")[0].kind == "gap"  # and on weekdays it is one
    with pytest.raises(HandOffGap, match=r"1 bars of 86400s missing on the weekdays .*"
                       r"name its calendar \(--calendar XNYS"):
        source(msgs(("A", first)), history=hist, history_end={"A": end},
               calendars=feed_calendars(None, hist))._read()
