"""``qmtl world run``'s bad input: each is refused before anything connects, with what to
do and exit code 1."""

from __future__ import annotations

from typer.testing import CliRunner

from qmtl.cli import app


def test_no_paper_and_no_brokers_is_refused(tmp_path):
    out = CliRunner().invoke(app, ["world", "run", "w", "--state-dir", str(tmp_path)])
    assert out.exit_code == 1
    assert "give --brokers, or add --paper" in out.output


def test_a_heartbeat_not_shorter_than_the_ttl_is_refused(tmp_path):
    args = ["world", "run", "w", "--paper", "--ttl", "5", "--heartbeat", "5",
            "--state-dir", str(tmp_path)]  # fmt: skip
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 1
    assert "--heartbeat 5.0 must be shorter than --ttl 5.0" in out.output
