"""Subprocesses a test starts: each has a timeout, and a timeout is a readable failure.

>>> import sys
>>> run([sys.executable, "-c", "print('hi')"], timeout=60).stdout
'hi\\n'
>>> run([sys.executable, "-c", "import time; print('working', flush=True); time.sleep(60)"],
...     timeout=1)
Traceback (most recent call last):
...
AssertionError: ... did not finish in 1 s; its last output:
working
...
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def run(cmd: Sequence[str], *, timeout: float = 600, tail: int = 3000,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(cmd)`` with its output captured as text; past ``timeout`` seconds the
    process is killed and the test fails with the command and the end of what it printed
    (stdout, then stderr), never a silent hang."""
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("check", False)
    try:
        return subprocess.run(list(cmd), timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        printed = (_text(exc.stdout) + _text(exc.stderr))[-tail:]
        shown = " ".join(str(c) for c in cmd)
        shown = shown if len(shown) <= 200 else shown[:200] + " ..."
        raise AssertionError(f"{shown} did not finish in {timeout:g} s; its last output:\n"
                             f"{printed or '(nothing)'}") from None
