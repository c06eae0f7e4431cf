"""Bad messages on the bars topic are counted, logged with topic/partition/offset, sent to
``<topic>.dlq``, and the run goes on with the good bars as if the bad ones were not there."""

from __future__ import annotations

import json
import logging

import numpy as np
from confluent_kafka import Producer

from connectors.live.bar_codec import encode_arrow, encode_bar
from connectors.live.feeds import ensure_topic
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    Cross,
    consume,
    make_data,
    max_abs_diff,
    topic_name,
    world_server,
)

DATA = make_data(120)


def row(symbol, i):
    return {k: v[i] for k, v in DATA[symbol].items()}


def test_bad_messages_go_to_the_dead_letter_topic_and_the_run_goes_on(kafka, tmp_path, caplog):
    topic = topic_name()
    ensure_topic(kafka.brokers, topic)  # one partition: offsets in publishing order
    p = Producer({"bootstrap.servers": kafka.brokers, "logger": logging.getLogger("t")})
    bad: list[tuple[bytes | None, bytes, str]] = []
    good = 0
    for i in range(120):
        for s in ("AAA", "BBB"):
            if i == 30 and s == "AAA":  # bulk: an Arrow IPC batch of three bars at once
                batch = {k: v[30:33] for k, v in DATA["AAA"].items()}
                p.produce(topic, key=b"AAA", value=encode_arrow(batch))
                good += 3
                continue
            if s == "AAA" and i in (31, 32):
                continue
            p.produce(topic, key=s.encode(), value=encode_bar(row(s, i)))
            good += 1
        if i == 10:
            bad += [
                (b"AAA", b'{"ts": 1, "open": ', "malformed JSON"),
                (b"AAA", json.dumps({"ts": 5, "open": 1.0}).encode(), "missing field 'high'"),
                (b"BBB", json.dumps({**{k: float(v) for k, v in row("BBB", 10).items()},
                                     "ts": "2015-01-01"}).encode(), "field 'ts' must be"),
                (b"ZZZ", encode_bar(row("BBB", 10)), "unknown symbol 'ZZZ'"),
                (b"BBB", encode_bar(row("BBB", 10)), "duplicate ts"),
                (b"BBB", encode_bar(row("BBB", 3)), "out-of-order ts"),
                (b"AAA", encode_bar({**row("AAA", 10), "close": -1.0}), "must be > 0"),
            ]
            for key, value, _ in bad:
                p.produce(topic, key=key, value=value)
    p.flush(10)
    bt = backtest(Cross, data=DATA)
    caplog.set_level(logging.WARNING, logger="qmtl.live")
    with world_server(tmp_path) as url:
        res = run_live(Cross, LiveOptions(
            brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
            data=tmp_path / "none", max_bars=good, warmup=0,
            orders_store=str(tmp_path / "o.db")))
    # the good bars give exactly the backtest
    assert res.stats.live_bars == good == 240
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    assert res.stats.dead_letters == len(bad)
    # each bad message is on the dead-letter topic with where it came from and why
    dlq = [json.loads(v) for _, v in consume(kafka.brokers, f"{topic}.dlq")]
    assert len(dlq) == len(bad)
    for record, (key, value, reason) in zip(dlq, bad, strict=True):
        assert record["topic"] == topic and record["partition"] == 0
        assert record["key"] == key.decode() and reason in record["reason"]
        assert record["value"] == value.decode()
    offsets = [r["offset"] for r in dlq]
    assert offsets == sorted(offsets)
    logged = [r.getMessage() for r in caplog.records if ".dlq" in r.getMessage()]
    assert len(logged) == len(bad)
    assert f"{topic}[0]@{offsets[0]}" in logged[0]
    assert np.isfinite(res.metrics["sharpe"])
