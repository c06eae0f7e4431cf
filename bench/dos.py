"""Denial of service without a token, against a real ``qmtl world serve``: what a
well-behaved client sees (``GET /healthz`` on a fresh connection every 20 ms) while
sockets that never finish their headers (slowloris) or send one header without end are
held open, and the server's memory.

    python bench/dos.py              # 10 s per phase
    python bench/dos.py --seconds 4  # quicker

Phases, each on a fresh server: **quiet** (the good client alone); **slowloris** (one
address, 127.0.0.2, keeping ``--sockets`` connections that sent ``GET /healthz
HTTP/1.1\\r\\nHost: x\\r\\n`` and then nothing, reopening each one the server closes);
**header** (one socket sending ``X-J: `` and then 256 KB chunks, reconnecting when cut off);
**files** (the server started with 512 open files and ``--sockets`` silent sockets from
ten addresses: past what its open files allow, the good client must get a 503 that says so,
never an empty reply). The good client is 127.0.0.1. Prints a table and writes
``bench/results/dos.json``. ``tests/world_api/test_dos.py`` runs the same attacks, shorter,
as tests.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTIAL = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
"""A request whose headers never end."""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_own_open_files(want: int = 4096) -> None:
    """Raise this process's soft open-files limit towards ``want`` (attacks hold sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard < 0 else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Server:
    """A ``qmtl world serve`` subprocess: its port and process."""

    port: int
    proc: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        """The server's resident memory (MB), from /proc."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@contextlib.contextmanager
def serve(
    *options: str, open_files: int | None = None, log: Path | None = None
) -> Iterator[Server]:
    """``qmtl world serve --insecure-dev *options`` on a fresh SQLite store, with its soft
    and hard open-files limit set to ``open_files`` when given; stopped on exit."""
    port = free_port()
    folder = Path(tempfile.mkdtemp(prefix="qmtl-dos-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("FORWARDED_ALLOW_IPS", None)

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    out = open(log or folder / "serve.log", "wb")  # closed below
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qmtl.cli",
            "world",
            "serve",
            "--insecure-dev",
            "--port",
            str(port),
            "--store",
            str(folder / "world.db"),
            *options,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        preexec_fn=limit,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (folder / "serve.log").read_text()[-3000:]
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            with contextlib.suppress(OSError), contextlib.closing(c):
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            assert time.monotonic() < deadline, "the server did not answer in 60 s"
            time.sleep(0.1)
        yield Server(port, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


@dataclass
class Answers:
    """What the good client got: (seconds, status) per request; status 0 is no answer (an
    empty reply, a reset or a timeout), with the error kept in ``errors``."""

    got: list[tuple[float, int]] = field(default_factory=list)
    bodies: dict[int, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def p99(self, status: int = 200) -> float:
        """The 99th percentile of the answers with ``status``, in milliseconds."""
        times = sorted(t for t, s in self.got if s == status)
        if not times:
            return float("nan")
        return 1000 * times[min(len(times) - 1, int(0.99 * len(times)))]

    def count(self, status: int) -> int:
        """How many answers had ``status``."""
        return sum(1 for _, s in self.got if s == status)


def good_client(
    port: int, stop: threading.Event, answers: Answers, every: float = 0.02, timeout: float = 5.0
) -> None:
    """``GET /healthz`` from 127.0.0.1 on a fresh connection every ``every`` seconds until
    ``stop``, each answer (or its absence) recorded in ``answers``."""
    while not stop.is_set():
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=timeout, source_address=("127.0.0.1", 0)
            )
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            conn.close()
            answers.got.append((time.perf_counter() - start, response.status))
            answers.bodies.setdefault(response.status, body)
        except (OSError, http.client.HTTPException) as exc:
            answers.got.append((time.perf_counter() - start, 0))
            answers.errors.append(f"{type(exc).__name__}: {exc}")
        stop.wait(every)


@dataclass
class Held:
    """What silent sockets saw: per socket closed by the server, seconds it stayed open and
    the first bytes the server sent; and how many could not even connect."""

    closed: list[tuple[float, bytes]] = field(default_factory=list)
    still_open: int = 0
    refused_connects: int = 0
    opened: int = 0


def slowloris(
    port: int, sources: list[str], per_source: int, seconds: float, reopen: bool = True
) -> Held:
    """Hold ``per_source`` connections from each of ``sources`` (loopback addresses) that
    send :data:`PARTIAL` and then nothing, for ``seconds``; a socket the server closes is
    reopened when ``reopen``. Returns what they saw."""
    raise_own_open_files(len(sources) * per_source + 256)
    held = Held()
    sel = selectors.DefaultSelector()
    born: dict[socket.socket, float] = {}
    got: dict[socket.socket, bytes] = {}

    def open_one(source: str) -> None:
        s = socket.socket()
        s.settimeout(2)
        try:
            s.bind((source, 0))
            s.connect(("127.0.0.1", port))
            s.sendall(PARTIAL)
        except OSError:
            held.refused_connects += 1
            s.close()
            return
        s.setblocking(False)
        held.opened += 1
        born[s], got[s] = time.monotonic(), b""
        sel.register(s, selectors.EVENT_READ, source)

    for source in sources:
        for _ in range(per_source):
            open_one(source)
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for key, _ in sel.select(min(left, 0.1)):
            s, source = key.fileobj, key.data
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if data:
                got[s] += data
                continue
            held.closed.append((time.monotonic() - born.pop(s), got.pop(s)))
            sel.unregister(s)
            s.close()
            if reopen:
                open_one(source)
    held.still_open = len(born)
    for s in list(born):
        sel.unregister(s)
        s.close()
    sel.close()
    return held


@dataclass
class Flood:
    """One endless header: bytes sent, connections made, and the first answer of each."""

    sent: int = 0
    connections: int = 0
    answers: list[bytes] = field(default_factory=list)


def endless_header(port: int, seconds: float, chunk: int = 256 * 1024) -> Flood:
    """Send ``GET /healthz ... X-J: `` and then ``chunk``-byte pieces of one header value
    for ``seconds``, reconnecting when the server cuts the connection off."""
    flood = Flood()
    piece = b"a" * chunk
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = socket.socket()
        s.settimeout(1)
        try:
            s.bind(("127.0.0.3", 0))
            s.connect(("127.0.0.1", port))
            flood.connections += 1
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-J: ")
            while time.monotonic() < end:
                s.sendall(piece)
                flood.sent += chunk
        except OSError:
            pass
        with contextlib.suppress(OSError):
            s.settimeout(0.5)
            flood.answers.append(s.recv(4096))
        s.close()
    return flood


def idle(port: int, seconds: float) -> None:
    """No attack: ``seconds`` of the good client alone."""
    time.sleep(seconds)


def under(attack: Any, port: int, seconds: float, *args: Any, **kwargs: Any) -> tuple[Answers, Any]:
    """The good client's answers while ``attack(port, *args, **kwargs)`` runs for about
    ``seconds`` in a process of its own (so that its loop does not take this one's CPU from
    the good client), and what the attack returned."""
    answers, stop = Answers(), threading.Event()
    client = threading.Thread(target=good_client, args=(port, stop, answers), daemon=True)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(time.sleep, 0).result()  # the process is up before the clock starts
        attack_done = pool.submit(attack, port, *args, **kwargs)
        time.sleep(0.3)  # the attack is in place before the first sample
        client.start()
        result = attack_done.result(timeout=seconds + 60)
    stop.set()
    client.join(10)
    return answers, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--sockets", type=int, default=600)
    args = parser.parse_args()
    raise_own_open_files(max(4096, 2 * args.sockets + 256))
    secs, rows = args.seconds, {}
    fast = ("--header-timeout", "2")

    def row(name: str, answers: Answers, **extra: Any) -> None:
        rows[name] = {
            "requests": len(answers.got),
            "ok": answers.count(200),
            "503": answers.count(503),
            "no_answer": answers.count(0),
            "p99_ms": round(answers.p99(), 2),
            **extra,
        }
        print(
            f"{name:10} {len(answers.got):5} requests  {answers.count(200):5} ok  "
            f"{answers.count(503):4} 503  {answers.count(0):4} no answer  "
            f"p99 {answers.p99():8.2f} ms  {extra}",
            flush=True,
        )

    with serve(*fast) as srv:
        answers, _ = under(idle, srv.port, secs, secs)
        row("quiet", answers)
    with serve(*fast) as srv:
        answers, held = under(slowloris, srv.port, secs, ["127.0.0.2"], args.sockets, secs)
        row(
            "slowloris",
            answers,
            attack_sockets_opened=held.opened,
            closed_by_server=len(held.closed),
            refused_503=sum(1 for _, b in held.closed if b.startswith(b"HTTP/1.1 503")),
        )
    with serve(*fast) as srv:
        before = srv.rss_mb()
        answers, flood = under(endless_header, srv.port, secs, secs)
        row(
            "header",
            answers,
            attack_mb_sent=round(flood.sent / 2**20),
            attack_connections=flood.connections,
            rss_growth_mb=round(srv.rss_mb() - before, 1),
        )
    with serve(*fast, open_files=512) as srv:
        sources = [f"127.0.0.{k}" for k in range(2, 12)]
        answers, held = under(
            slowloris, srv.port, secs, sources, args.sockets // 10, secs, reopen=False
        )
        row("files", answers, attack_sockets_opened=held.opened, server_open_files=512)
    out = ROOT / "bench" / "results" / "dos.json"
    out.write_text(
        json.dumps({"seconds": secs, "sockets": args.sockets, "phases": rows}, indent=2) + "\n"
    )
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
