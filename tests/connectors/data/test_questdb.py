"""QuestDB: the reader's SQL on the machine's PostgreSQL (a table of QuestDB's shape), the
writer's ILP lines parsed by listeners the tests start (TCP and HTTP)."""

from __future__ import annotations

import http.server
import socket
import threading

import numpy as np
import pytest

from connectors.data.questdb import QuestDBError, QuestDBReader, QuestDBWriter
from connectors.data.synthetic import generate_bars
from tests.connectors.conftest import PG_URL, create_bars_table, same_bars

BARS = generate_bars(1000, interval="1m", start="2024-02-01", seed=3)
OTHER = generate_bars(50, interval="1m", start="2024-02-01", seed=4)


@pytest.fixture
def reader(pg_schema):
    create_bars_table(pg_schema, "1m", {"BTC": BARS, "ETH": OTHER})
    r = QuestDBReader(PG_URL, table=f"{pg_schema}.bars_{{interval}}", page_rows=128)
    yield r
    r.close()


@pytest.mark.parametrize("binary", [True, False])
def test_reader_pages_through_a_symbol_and_range(reader, binary):
    reader.binary = binary
    ts = BARS["ts"]
    got = reader.read("BTC", "1m", int(ts[100]), int(ts[899]))
    assert same_bars(got, {k: v[100:900] for k, v in BARS.items()})
    pages = list(reader.iter_pages("BTC", "1m", int(ts[0]), int(ts[-1])))
    assert [len(p["ts"]) for p in pages] == [128] * 7 + [104]
    assert reader.span("BTC", "1m") == (int(ts[0]), int(ts[-1]), 1000)
    assert reader.span("ETH", "1m")[2] == 50


def test_reader_bounds_are_inclusive_and_symbols_do_not_mix(reader):
    ts = BARS["ts"]
    one = reader.read("BTC", "1m", int(ts[5]), int(ts[5]))
    assert one["ts"].tolist() == [int(ts[5])]
    between = reader.read("BTC", "1m", int(ts[5]) + 1, int(ts[6]) - 1)
    assert len(between["ts"]) == 0
    eth = reader.read("ETH", "1m", int(ts[0]), int(ts[-1]))
    assert same_bars(eth, OTHER)


def test_reader_parameters_are_not_sql(reader):
    """A symbol is a parameter, never spliced into the SQL."""
    assert len(reader.read("BTC' OR '1'='1", "1m", 0, 2**62)["ts"]) == 0
    assert reader.span("x'; DROP TABLE bars_1m; --", "1m") is None
    assert reader.span("BTC", "1m")[2] == 1000


def test_missing_table_reads_as_nothing(reader):
    assert reader.span("BTC", "1d") is None
    assert len(reader.read("BTC", "1d", 0, 2**62)["ts"]) == 0


def test_a_dropped_connection_is_reopened_once(reader):
    import psycopg

    assert reader.span("BTC", "1m")[2] == 1000
    pid = reader._conn.info.backend_pid
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert reader.span("BTC", "1m")[2] == 1000  # asked again on a new connection
    assert reader._conn.info.backend_pid != pid


def test_unreachable_server_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    r = QuestDBReader(f"postgresql://admin:secret@127.0.0.1:{port}/qdb", connect_timeout=2)
    with pytest.raises(QuestDBError, match=f"cannot connect to questdb 127.0.0.1:{port}") as err:
        r.span("BTC", "1m")
    assert "secret" not in str(err.value)


# -- the writer: ILP parsed by a listener ----------------------------------------------------
def parse_ilp(text: str) -> list[tuple[str, dict[str, str], dict[str, float], int]]:
    out = []
    for line in text.strip().splitlines():
        head, fields, ts = line.split(" ")
        table, *tags = head.split(",")
        tag_map = dict(t.split("=", 1) for t in tags)
        field_map = {k: float(v) for k, v in (f.split("=", 1) for f in fields.split(","))}
        out.append((table, tag_map, field_map, int(ts)))
    return out


def check_lines(lines, symbol, table, bars):
    assert len(lines) == len(bars["ts"])
    for i, (tbl, tags, fields, ts) in enumerate(lines):
        assert tbl == table and tags == {"symbol": symbol}
        assert ts == int(bars["ts"][i])
        for c in ("open", "high", "low", "close", "volume"):
            assert fields[c] == float(bars[c][i]), (i, c)  # exact: shortest round-trip text


class TcpListener:
    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while chunk := conn.recv(65536):
                self.data += chunk
        self.done.set()


def test_writer_over_tcp_sends_every_bar_exactly(tmp_path):
    listener = TcpListener()
    w = QuestDBWriter(f"tcp::addr=127.0.0.1:{listener.port};")
    part = {k: v[:300] for k, v in BARS.items()}
    assert w.write("BTC-USDT", "1m", part) == 300
    w.close()
    assert listener.done.wait(10)
    check_lines(parse_ilp(listener.data.decode()), "BTC-USDT", "bars_1m", part)


class IlpHttp(http.server.BaseHTTPRequestHandler):
    fail_first = 0
    bodies: list[bytes] = []

    def do_GET(self):  # /settings: answer like a server that only speaks ILP v1
        self.send_response(404)
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(500)
            self.send_header("content-type", "application/json")
            msg = b'{"code":"internal error","message":"disk full"}'
            self.send_header("content-length", str(len(msg)))
            self.end_headers()
            self.wfile.write(msg)
            return
        assert self.path.startswith("/write")
        type(self).bodies.append(body)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_listener():
    IlpHttp.bodies = []
    IlpHttp.fail_first = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), IlpHttp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_writer_over_http_flushes_once_per_batch(http_listener):
    port = http_listener.server_address[1]
    w = QuestDBWriter(f"http::addr=127.0.0.1:{port};", table="shared_{interval}")
    w.write("ETH", "1m", OTHER)
    w.write("BTC", "1m", {k: v[:10] for k, v in BARS.items()})
    w.close()
    assert len(IlpHttp.bodies) == 2
    check_lines(parse_ilp(IlpHttp.bodies[0].decode()), "ETH", "shared_1m", OTHER)
    check_lines(parse_ilp(IlpHttp.bodies[1].decode()), "BTC", "shared_1m",
                {k: v[:10] for k, v in BARS.items()})


def test_writer_retries_then_reports(http_listener):
    port = http_listener.server_address[1]
    sleeps = []
    conf = f"http::addr=127.0.0.1:{port};retry_timeout=0;"
    IlpHttp.fail_first = 2
    w = QuestDBWriter(conf, retries=3, backoff=0.25, sleep=sleeps.append)
    assert w.write("ETH", "1m", OTHER) == 50
    assert sleeps == [0.25, 0.5] and len(IlpHttp.bodies) == 1
    check_lines(parse_ilp(IlpHttp.bodies[0].decode()), "ETH", "bars_1m", OTHER)
    IlpHttp.fail_first = 10
    w2 = QuestDBWriter(conf, retries=1, backoff=0, sleep=sleeps.append)
    with pytest.raises(QuestDBError, match=r"writing 50 1m bars of 'ETH' to bars_1m failed "
                                           r"after 2 attempts: .*disk full"):
        w2.write("ETH", "1m", OTHER)


def test_backfilled_bars_go_to_questdb_too(tmp_path, http_listener):
    from connectors.data.catalog import Catalog
    from connectors.data.seamless import SeamlessDataProvider
    from tests.connectors.conftest import CountingOrigin, write_origin_file

    write_origin_file(tmp_path / "o", "BTC", "1m", BARS)
    port = http_listener.server_address[1]
    data = SeamlessDataProvider(Catalog(tmp_path / "c"), origin=CountingOrigin(tmp_path / "o"),
                                writer=QuestDBWriter(f"http::addr=127.0.0.1:{port};"))
    ts = BARS["ts"]
    data.read("BTC", "1m", int(ts[0]), int(ts[-1]))
    lines = [x for body in IlpHttp.bodies for x in parse_ilp(body.decode())]
    check_lines(lines, "BTC", "bars_1m", BARS)
    assert np.array_equal(data.catalog.read("BTC", "1m")["close"], BARS["close"])
