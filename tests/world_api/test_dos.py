"""Denial of service without a token, against the real ``qmtl world serve`` process: silent
sockets (slowloris), a header without end, and more sockets than the server has open files.
The good client (127.0.0.1, a fresh connection per request) must keep getting answers; the
attackers come from other loopback addresses (127.0.0.2 and up). The attacks run in a
process of their own (``bench/dos.py``, which also measures them at length)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from bench.dos import endless_header, raise_own_open_files, serve, slowloris, under

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _open_files():
    raise_own_open_files(4096)


def _request(port: int, headers: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
            if b"\r\n\r\n" in got and (b"}" in got or b"ok" in got):
                break
        return got


def test_headers_are_bounded_in_size_and_the_answer_says_so():
    with serve("--max-header-bytes", "16384") as srv:
        assert _request(srv.port, b"X-Pad: " + b"a" * 10_000 + b"\r\n").startswith(b"HTTP/1.1 200")
        refused = _request(srv.port, b"X-Pad: " + b"a" * 20_000 + b"\r\n")
        assert refused.startswith(b"HTTP/1.1 431"), refused[:200]
        body = json.loads(refused.split(b"\r\n\r\n", 1)[1])
        assert body == {"detail": "request headers exceed the limit of 16384 bytes"}


def test_silent_sockets_are_closed_and_one_address_is_capped():
    # 200 sockets from 127.0.0.2 that send part of a request and then nothing
    with serve("--header-timeout", "1.5", "--max-connections-per-client", "50") as srv:
        answers, held = under(slowloris, srv.port, 4, ["127.0.0.2"], 200, 4, reopen=False)
    assert held.opened == 200
    assert held.still_open == 0, f"{held.still_open} silent sockets still open after 4 s"
    timed_out = [t for t, got in held.closed if got.startswith(b"HTTP/1.1 408")]
    refused = [got for _, got in held.closed if got.startswith(b"HTTP/1.1 503")]
    assert len(timed_out) == 50 and min(timed_out) >= 1.4  # never before its header timeout
    assert refused and all(b"too many connections from 127.0.0.2" in got for got in refused)
    assert answers.count(0) == 0, answers.errors[:3]
    assert answers.count(200) == len(answers.got) >= 20


def test_an_endless_header_is_cut_off_and_others_are_answered():
    with serve() as srv:
        before = srv.rss_mb()
        answers, flood = under(endless_header, srv.port, 3, 3)
        grew = srv.rss_mb() - before
    assert any(a.startswith(b"HTTP/1.1 431") for a in flood.answers), flood.answers[:3]
    assert flood.connections > 1  # cut off, it came back
    assert grew < 50, f"the server grew {grew:.0f} MB"
    assert answers.count(200) == len(answers.got) >= 20, (len(answers.got), answers.errors[:3])


def test_past_its_open_files_the_server_answers_503_not_an_empty_reply():
    # 600 silent sockets from ten addresses against a server with 512 open files
    sources = [f"127.0.0.{k}" for k in range(2, 12)]
    with serve("--header-timeout", "1.5", open_files=512) as srv:
        answers, held = under(slowloris, srv.port, 4, sources, 60, 4, reopen=False)
        time.sleep(0.5)
        late, _ = under(slowloris, srv.port, 1, sources, 0, 1)  # after the attack
    assert held.opened == 600
    assert answers.count(0) == 0, answers.errors[:3]  # never an empty reply
    assert answers.count(503) > 0 and "the service holds" in answers.bodies[503]
    assert answers.count(200) > 0  # once the silent ones timed out
    assert late.count(200) == len(late.got) > 0
