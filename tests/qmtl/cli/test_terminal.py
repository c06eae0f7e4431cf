"""Control characters from outside (a reason a server sends, a symbol typed) are shown escaped
by the CLI, never sent to the terminal: `qmtl world status` and `qmtl data import`."""

from __future__ import annotations

import json
import sqlite3
import string

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from connectors.data.synthetic import generate_bars
from qmtl.cli import app
from qmtl.cli.terminal import safe_markup, safe_text
from tests.qmtl.cli.test_world import post, world  # noqa: F401  (the served world fixture)
from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.store import open_store

NASTY = "\x1b]0;pwned\x07\x1b[2J\x1b[1A\r\x08\u202eevil"


def controls(text: str) -> set[str]:
    return {c for c in text if c in "\x1b\x07\r\x08\u202e"}


def test_world_status_escapes_a_reason_with_terminal_controls(world, tmp_path):  # noqa: F811
    url, op = world
    runner = CliRunner()
    assert (
        runner.invoke(app, ["world", "create", "demo", "--url", url, "--token", op]).exit_code == 0
    )
    post(url, op, "demo", ("alpha", 1, 1.5))
    with WorldServiceClient(url, op) as client:
        client.put_override("demo", "alpha", "inactive", reason="placeholder")
    # the service refuses control characters in a reason now (422); a store written before
    # that check, or another server, can still hand one to the CLI
    with sqlite3.connect(tmp_path / "world.db") as db:
        (body,) = db.execute("SELECT body FROM overrides").fetchone()
        stored = json.loads(body) | {"reason": f"halt {NASTY} [bold]x[/bold]"}
        db.execute("UPDATE overrides SET body = ?", (json.dumps(stored),))
    store = open_store(str(tmp_path / "world.db"))
    with serve(create_app(store)) as fresh:  # a server that reads the store anew
        got = runner.invoke(
            app, ["world", "status", "demo", "--url", fresh, "--token", op], env={"COLUMNS": "400"}
        )
    store.close()
    assert got.exit_code == 0, got.output
    assert not controls(got.output), repr(got.output)
    assert "\\x1b]0;pwned\\x07" in got.output and "\\u202eevil" in got.output
    assert "[bold]x[/bold]" in got.output  # markup in a reason is shown, not applied


def test_data_import_echo_escapes_the_symbol(tmp_path):
    bars = generate_bars(3, interval="1d", start="2024-01-02", seed=1)
    csv = tmp_path / "x.csv"
    csv.write_text(
        "date,open,high,low,close,volume\n"
        + "".join(
            f"2024-01-0{i + 2},{bars['open'][i]},{bars['high'][i]},{bars['low'][i]},"
            f"{bars['close'][i]},{bars['volume'][i]}\n"
            for i in range(3)
        )
    )
    symbol = "AB\x1b[2J\x07"
    got = CliRunner().invoke(
        app, ["data", "import", str(csv), "--symbol", symbol, "--data", str(tmp_path / "cat")]
    )
    assert got.exit_code == 0, got.output
    assert not controls(got.output) and "AB\\x1b[2J\\x07" in got.output


@given(st.text())
def test_safe_text_leaves_no_control_and_keeps_printable_text(text):
    shown = safe_text(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in shown)
    assert all(c in shown for c in text if c.isprintable() and c not in "\u202e\u2066")
    if all(c.isprintable() for c in text) and not controls(text):
        assert shown == text or any(
            0x2066 <= ord(c) <= 0x2069 or c in "\u061c\u200e\u200f" for c in text
        )


def test_safe_markup_of_plain_text_is_unchanged():
    plain = string.ascii_letters + string.digits + " .,-_:;()"
    assert safe_markup(plain) == plain
