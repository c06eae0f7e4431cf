"""docs/cli.md documents every ``qmtl`` command and option there is, and nothing else.

Each command is a section headed ``## `qmtl GROUP CMD` ``; its options are the ``--flags``
in the first column of the section's table. The code's commands come from the Typer app.
"""

from __future__ import annotations

import re

import click
import typer

from qmtl.cli import app
from tests.docs.markdown_blocks import ROOT

HEADING = re.compile(r"^## `(qmtl[a-z \-]*)`\s*$")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b")


def code_commands() -> dict[str, set[str]]:
    """``"qmtl data import" -> {"--symbol", ...}`` for every leaf command of the CLI."""
    out: dict[str, set[str]] = {}

    def walk(cmd: click.Command, path: str) -> None:
        if hasattr(cmd, "list_commands"):  # a group; get_command loads a lazy command
            ctx = cmd.context_class(cmd)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}")
            return
        flags = {o for p in cmd.params for o in p.opts if o.startswith("-")}
        out[path] = flags - {"--help"}

    walk(typer.main.get_command(app), "qmtl")
    return out


def documented_commands(text: str) -> dict[str, set[str]]:
    """The same mapping, read from the reference page.

    >>> doc = documented_commands("## `qmtl x`\\n\\n| `--a N`, `-p` | y |\\n|---|---|\\n")
    >>> {k: sorted(v) for k, v in doc.items()}
    {'qmtl x': ['--a', '-p']}
    """
    out: dict[str, set[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = HEADING.match(line)
        if m:
            current = m.group(1).strip()
            out[current] = set()
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("|"):
            first = line.split("|")[1]
            out[current] |= set(FLAG.findall(first))
    return out


def test_every_command_is_documented_and_nothing_else() -> None:
    doc = documented_commands((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    code = code_commands()
    assert sorted(set(code) - set(doc)) == [], "commands missing from docs/cli.md"
    assert sorted(set(doc) - set(code)) == [], "docs/cli.md documents commands that do not exist"


def test_every_option_is_documented_and_exists() -> None:
    doc = documented_commands((ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    for command, flags in code_commands().items():
        documented = doc.get(command, set())
        assert flags - documented == set(), f"{command}: options missing from docs/cli.md"
        assert documented - flags == set(), f"{command}: docs/cli.md lists unknown options"
