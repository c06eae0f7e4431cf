"""The book as a process against a ccxt exchange (Binance's documented spot API, served
locally): kill -9 while an order is on the wire, restart, and the order is never sent
twice (its client id is settled with the venue), reconciliation passes, and the position is
the sum of the fills. A broker holding a position the ledger does not know: the process
refuses to trade (exit 3) until `qmtl world reconcile --adopt`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.binance_server import Exchange, serve, urls
from qmtl.book_run.store import open_book_store
from tests import procs

W = "wbook"


def target(path: Path, sid: str, seq: int, weight: float, price: float = 100.0) -> None:
    with path.open("a") as f:
        f.write(
            json.dumps(
                {
                    "world": W,
                    "strategy_id": sid,
                    "seq": seq,
                    "ts": seq,
                    "weights": {"BTC/USDT": weight},
                    "prices": {"BTC/USDT": price},
                }
            )
            + "\n"
        )


def qmtl(*args: str) -> list[str]:
    return [sys.executable, "-m", "qmtl.cli", "world", *args]


def setup(tmp: Path, ex: Exchange) -> tuple[list[str], dict[str, str]]:
    _srv, base = serve(ex)  # a daemon thread: it ends with the test process
    cfg = tmp / "ccxt.json"
    cfg.write_text(json.dumps({"urls": urls(base), "enableRateLimit": False, "timeout": 3000}))
    broker = f"ccxt:binance?config={cfg}"
    common = ["--broker", broker, "--symbols", "BTC/USDT", "--book-store", str(tmp / "b.db")]
    env = {
        **os.environ,
        "QMTL_BROKER_KEY": "k",
        "QMTL_BROKER_SECRET": "s",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return common, env


def start(common: list[str], tmp: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        qmtl(
            "book-run",
            W,
            *common,
            "--targets",
            str(tmp / "targets.jsonl"),
            "--weight",
            "long=0.5",
            "--weight",
            "short=0.5",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait(cond, what: str, proc: subprocess.Popen[str] | None = None, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"the book exited ({proc.returncode}) before {what}:\n"
                f"{proc.stdout.read() if proc.stdout else ''}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events(tmp: Path) -> list[dict]:
    s = open_book_store(str(tmp / "b.db"))
    try:
        return s.events(W)
    finally:
        s.close()


@pytest.mark.slow
def test_kill_9_mid_order_then_restart_sends_nothing_twice(tmp_path: Path) -> None:
    ex = Exchange({"USDT": 10_000.0})
    common, env = setup(tmp_path, ex)
    target(tmp_path / "targets.jsonl", "long", 1, 0.8)
    target(tmp_path / "targets.jsonl", "short", 1, -0.5)
    ex.hang = True  # the venue takes the order and its answer never comes back
    proc = start(common, tmp_path, env)
    wait(lambda: len(ex.posts) == 1, "the order reached the venue", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    ex.release.set()
    stored = [e for e in events(tmp_path) if e["kind"] == "order"]
    assert len(stored) == 1 and stored[0]["qty"] == pytest.approx(15.0)  # 40 - 25, one net
    cid = stored[0]["client_id"]
    assert ex.posts == [cid]

    proc = start(common, tmp_path, env)
    try:
        wait(lambda: any(e["kind"] == "fill" for e in events(tmp_path)), "the fill", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert ex.posts == [cid]  # never sent twice
    fills = [e for e in events(tmp_path) if e["kind"] == "fill"]
    led = open_book_store(str(tmp_path / "b.db")).load(W)
    assert (
        led.positions["BTC/USDT"]
        == pytest.approx(sum(f["qty"] for f in fills))
        == pytest.approx(ex.balances["BTC"])
    )
    out = procs.run(qmtl("reconcile", W, *common), env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "agree" in out.stdout


@pytest.mark.slow
def test_an_unknown_position_refuses_until_adopted(tmp_path: Path) -> None:
    ex = Exchange({"USDT": 5_000.0, "BTC": 2.0})
    common, env = setup(tmp_path, ex)
    target(tmp_path / "targets.jsonl", "long", 1, 0.5)
    run = qmtl(
        "book-run", W, *common, "--targets", str(tmp_path / "targets.jsonl"), "--weight", "long=1"
    )
    refused = procs.run(run, env=env, timeout=120)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "refusing to trade" in refused.stdout + refused.stderr
    assert "position BTC/USDT: ledger 0, broker 2" in refused.stdout + refused.stderr
    assert ex.posts == []
    check = procs.run(qmtl("reconcile", W, *common), env=env, timeout=120)
    assert check.returncode == 3
    adopted = procs.run(
        qmtl("reconcile", W, *common, "--adopt", "--who", "carol", "--why", "seed coins"),
        env=env,
        timeout=120,
    )
    assert adopted.returncode == 0, adopted.stdout + adopted.stderr
    audit = [e for e in events(tmp_path) if e["kind"] == "adopt"][-1]
    assert (audit["who"], audit["why"]) == ("carol", "seed coins")
    proc = start(common, tmp_path, env)
    try:
        wait(lambda: len(ex.posts) == 1, "an order after the adoption", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
