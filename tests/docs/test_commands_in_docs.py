"""Every ``qmtl`` command line in the docs' shell blocks names a command and options that
exist (checked against the Typer app, without running them)."""

from __future__ import annotations

import shlex

import pytest

from tests.docs.markdown_blocks import ROOT, doc_pages, page_fences
from tests.docs.test_cli_reference import code_commands


def qmtl_lines(source: str) -> list[list[str]]:
    """The ``qmtl ...`` invocations of a shell block, as tokens (comments and ``[ ]`` dropped).

    >>> qmtl_lines("pip install x && qmtl data ls --data d  # list\\nqmtl run a.py \\\\\\n  -p n=1")
    [['qmtl', 'data', 'ls', '--data', 'd'], ['qmtl', 'run', 'a.py', '-p', 'n=1']]
    """
    out = []
    for line in source.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line.replace("[", " ").replace("]", " "), posix=True,
                            punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in [*lexer, ";"]:
            if token and set(token) <= set("&|;()<>"):
                if command and command[0] == "qmtl":
                    out.append(command)
                command = []
            else:
                command.append(token)
    return out


def check(tokens: list[str], commands: dict[str, set[str]]) -> str | None:
    """Why ``tokens`` is not a valid ``qmtl`` invocation, or None."""
    words = ["qmtl"]
    for token in tokens[1:]:
        if words == ["qmtl", "feed"] and token.startswith("ccxt:"):  # qmtl feed ccxt:ID
            token = "ccxt"
        if token.startswith("-") or " ".join([*words, token]) not in _prefixes(commands):
            break
        words.append(token)
    command = " ".join(words)
    if command not in commands:
        return f"{' '.join(tokens)}: no command {command!r}"
    unknown = [t.split("=")[0] for t in tokens if t.startswith("-")
               and t.split("=")[0] not in commands[command] | {"--help", "--no-paper"}]
    return f"{' '.join(tokens)}: {command} has no option {unknown}" if unknown else None


def _prefixes(commands: dict[str, set[str]]) -> set[str]:
    out = set()
    for name in commands:
        words = name.split()
        out |= {" ".join(words[: i + 1]) for i in range(len(words))}
    return out


@pytest.mark.parametrize("page", doc_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documented_commands_exist(page) -> None:
    commands = code_commands()
    problems = []
    for fence in page_fences(page):
        if fence.lang != "bash":
            continue
        for tokens in qmtl_lines(fence.source):
            why = check(tokens, commands)
            if why:
                problems.append(f"{fence.where}: {why}")
    assert not problems, "\n".join(problems)


def test_a_wrong_option_is_caught() -> None:
    commands = {"qmtl data ls": {"--data"}}
    assert check(["qmtl", "data", "ls", "--data", "d"], commands) is None
    assert "no option ['--dta']" in check(["qmtl", "data", "ls", "--dta", "d"], commands)
    assert "no command 'qmtl data'" in check(["qmtl", "data", "lx"], commands)
