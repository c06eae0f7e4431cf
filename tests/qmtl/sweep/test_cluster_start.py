"""A local cluster that cannot start (a port taken, the file limit reached, peers that never
connect) fails with a message in bounded time; it never hangs (a sweep bench on a machine
out of file descriptors hung past 600 s)."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.sweep.cluster import RETRYING, watch

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
TARGET = f"{HERE / 'strategies.py'}:SmaCross"
BOUND = 150  # seconds: process starts on a loaded 2-core machine take most of it


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    cat = Catalog(root)
    for i, sym in enumerate(("AAA", "BBB")):
        cat.write(sym, "1d", generate_bars(300, seed=i + 1))
    return root


def sweep_args(catalog: Path, out: Path, processes: int) -> list[str]:
    return [
        "sweep",
        TARGET,
        "-p",
        "fast=5,10,15,20",
        "-p",
        "slow=30,40",
        "--data",
        str(catalog),
        "--processes",
        str(processes),
        "--workers",
        "2",
        "--out",
        str(out),
    ]


def test_a_process_that_cannot_bind_its_port_stops_the_cluster(catalog, tmp_path):
    """Process 0's port is taken: it fails, and the others (which would wait for it forever)
    are stopped."""
    script = textwrap.dedent(f"""
        import socket, sys
        import qmtl.sweep.cluster
        cluster = sys.modules["qmtl.sweep.cluster"]
        busy = socket.socket()
        busy.bind(("127.0.0.1", 0))
        busy.listen(8)
        real = cluster.free_ports
        cluster.free_ports = lambda n: [busy.getsockname()[1], *real(n - 1)]
        from qmtl.cli import main
        main({sweep_args(catalog, tmp_path / "out", 3)!r})
    """)
    t0 = time.monotonic()
    got = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert got.returncode == 1, (got.stdout, got.stderr)
    assert "error: process 0 of the cluster" in got.stderr, got.stderr
    assert "internal error" not in got.stderr
    assert time.monotonic() - t0 < BOUND


@pytest.mark.parametrize("limit", [9, 12])
def test_a_lowered_file_limit_fails_with_a_message_in_bounded_time(catalog, tmp_path, limit):
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    got = subprocess.run(
        [sys.executable, "-m", "qmtl.cli", *sweep_args(catalog, tmp_path / "out", 4)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND,
        preexec_fn=lower,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    if got.returncode == 0:  # the limit was enough this time
        assert (tmp_path / "out" / "results.parquet").is_file()
        return
    assert got.returncode == 1, got.stderr
    assert got.stderr.startswith("error: ") and "internal error" not in got.stderr, got.stderr
    assert "ulimit -n" in got.stderr


def test_processes_that_keep_retrying_to_connect_are_stopped(tmp_path):
    """Peers that never answer: each process retries once a second, forever; after the
    connect timeout the cluster is stopped and the retry line is the message."""
    line = f"worker 1:\\t{RETRYING} 0: Connection refused (os error 111); retrying"
    code = (
        f"import sys, time\nwhile True:\n    print({line!r}, file=sys.stderr, flush=True)\n"
        "    time.sleep(0.3)\n"
    )
    logs = [tmp_path / f"stderr{i}.txt" for i in range(2)]
    procs = []
    for log in logs:
        with log.open("wb") as f:
            procs.append(subprocess.Popen([sys.executable, "-c", code], stderr=f))
    t0 = time.monotonic()
    said = watch(procs, logs, connect_timeout=1.5)
    assert time.monotonic() - t0 < 10
    assert said is not None and "could not connect within 1.5 s" in said
    assert "Connection refused" in said
    assert all(p.returncode is not None for p in procs)
