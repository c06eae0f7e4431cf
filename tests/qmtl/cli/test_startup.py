"""`qmtl --version` answers without loading the commands' layers (it took 3.4 s, 1.8 s of
them imports of pyarrow, Bytewax, httpx, pydantic...): checked by what a fresh interpreter
has imported, not by timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HEAVY = (
    "bytewax",
    "polars",
    "pyarrow",
    "pydantic",
    "httpx",
    "fastapi",
    "psycopg",
    "plotly",
    "typer",
)


def test_version_imports_no_heavy_module():
    code = (
        "import sys, json; from qmtl.cli import main; main(['--version']); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    got = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(ROOT)},
    )
    assert got.returncode == 0, got.stderr
    first, loaded = got.stdout.splitlines()
    assert first.startswith("qmtl ") and json.loads(loaded) == []


def test_the_app_is_still_there_for_everything_else():
    from typer.testing import CliRunner

    from qmtl.cli import app

    got = CliRunner().invoke(app, ["--version"])
    assert got.exit_code == 0 and got.output.startswith("qmtl ")
    assert CliRunner().invoke(app, ["data", "--help"]).exit_code == 0


def test_help_lists_the_commands_without_loading_them():
    code = (
        "import sys, json; from qmtl.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps([m for m in {HEAVY[:-1]!r} if m in sys.modules]))"
    )
    got = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(ROOT)})
    assert got.returncode == 0, got.stderr
    assert "submit" in got.stdout and json.loads(got.stdout.splitlines()[-1]) == []


def test_the_listing_of_help_is_each_commands_own_help():
    """The table in qmtl.cli.commands says what `qmtl --help` lists: each line must be the
    first paragraph of the command's own help (its docstring), as Typer would list it."""
    import typer.main

    from qmtl.cli import _app
    from qmtl.cli.commands import COMMANDS, Qmtl

    group = typer.main.get_command(_app())
    assert isinstance(group, Qmtl)
    ctx = group.context_class(group)
    assert group.list_commands(ctx) == [c.name for c in COMMANDS]
    for spec in COMMANDS:
        command = group.get_command(ctx, spec.name)  # loads it
        assert command is group.commands[spec.name]
        own = command.short_help or command.help or ""
        first = " ".join(own.strip().split("\n\n")[0].split())
        assert first == spec.short_help, spec.name
