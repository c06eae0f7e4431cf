"""The recovery folder, its meta file, the source's snapshot state and the record log."""

from __future__ import annotations

import json
import logging
import pickle

import bytewax.operators as op
import numpy as np
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from dataflows.recovery import (
    IDENTITY,
    META_FILE,
    RecordLog,
    RecoveryDir,
    RecoveryMismatch,
    SourceState,
    recovery_config,
)
from dataflows.replay import CallbackSink

FRESH = {"run_id": "r1", "strategy": "s", "symbols": ["A", "B"], "interval": "1d",
         "world": "w", "source": "kafka:h/bars", "params": {"fast": 3}}


@pytest.mark.parametrize("key", IDENTITY)
def test_a_folder_of_another_run_is_refused_naming_what_differs(tmp_path, key):
    rd = RecoveryDir(tmp_path)
    rd.write_meta({**FRESH, "split": None, "history_end": {}})
    other = {**FRESH, key: "something else"}
    with pytest.raises(RecoveryMismatch, match=rf"holds another run \({key}: "):
        rd.read_meta(other)


def test_the_same_run_resumes_with_its_own_identity_and_hand_off(tmp_path):
    rd = RecoveryDir(tmp_path / "new")
    meta = {**FRESH, "split": 99, "history_end": {"A": 98}}
    rd.write_meta(meta)
    assert not list((tmp_path / "new").glob("*.tmp"))
    # a restart has a new run id and may have new parameters: the folder's are kept
    assert rd.read_meta({**FRESH, "run_id": "r2", "params": {"fast": 4}}) == meta


def test_an_unreadable_meta_file_says_so(tmp_path):
    (tmp_path / META_FILE).write_text("{torn")
    with pytest.raises(RecoveryMismatch, match=f"{META_FILE} is unreadable"):
        RecoveryDir(tmp_path).read_meta(FRESH)


def test_a_resumed_run_without_snapshots_starts_over_and_says_so(tmp_path, caplog, monkeypatch):
    # the CLI, run in process by other tests, stops "qmtl" records at its own handler
    monkeypatch.setattr(logging.getLogger("qmtl"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="qmtl.live")
    assert recovery_config(None, resuming=True) is None
    recovery_config(tmp_path, resuming=True)
    assert "has no snapshots yet: starting over" in caplog.text
    assert RecoveryDir(tmp_path).has_snapshots()
    caplog.clear()
    recovery_config(tmp_path, resuming=True)
    assert caplog.text == ""


def test_a_stateful_step_resumes_from_its_snapshot(tmp_path):
    """The folder's Bytewax config restores step state: a running sum over two runs."""
    totals: list[int] = []

    def flow(items):
        f = Dataflow("t")
        s = op.input("in", f, TestingSource(items))
        keyed = op.key_on("k", s, lambda _x: "all")
        summed = op.stateful_map("sum", keyed, lambda acc, x: ((acc or 0) + x,) * 2)
        op.output("out", summed, CallbackSink(lambda kv: totals.append(kv[1])))
        return f

    run_main(flow([1, 2, 3]), recovery_config=recovery_config(tmp_path, resuming=False))
    run_main(flow([1, 2, 3, 4]), recovery_config=recovery_config(tmp_path, resuming=True))
    assert totals == [1, 3, 6, 10]  # the second run read on after item 3 with sum 6


def test_source_state_snapshots_are_plain_data_and_read_back_the_same(tmp_path):
    s = SourceState.restore(None, history_end={"A": 5, "B": 7})
    s.handed_off.add("A")
    s.last_ts["A"] = 9
    s.warm_items, s.live_bars = 2, 4
    snap = pickle.loads(pickle.dumps(s.snapshot({0: 12, 1: 3})))
    assert isinstance(snap, dict) and snap["handed_off"] == ["A"]
    back = SourceState.restore(snap, history_end={"A": 5, "B": 7})
    assert back == SourceState({0: 12, 1: 3}, {"A": 9, "B": 7}, {"A"}, 2, 4)
    # the snapshot is a copy: the running state moves on without changing it
    s.last_ts["A"] = 10
    assert snap["last_ts"]["A"] == 9


def test_the_record_log_cuts_a_torn_record_and_appends_after_it(tmp_path):
    dt = np.dtype([("ts", "<i8"), ("v", "<f8")])
    path = tmp_path / "rows.bin"
    log = RecordLog(path, dt, resume=False)
    log.append(np.array([(1, 1.5), (2, 2.5)], dt))
    log.close()
    with path.open("ab") as f:
        f.write(np.array([(3, 3.5)], dt).tobytes()[:11])  # killed mid-write
    log = RecordLog(path, dt, resume=True)
    assert log.all()["ts"].tolist() == [1, 2]
    log.append(np.array([(3, 3.5)], dt))
    log.close()
    assert np.frombuffer(path.read_bytes(), dt)["v"].tolist() == [1.5, 2.5, 3.5]
    assert json.dumps(RecordLog(None, dt, resume=True).all().tolist()) == "[]"
