"""Text from outside (symbols, ids, reasons a server sends, cells of a file) made safe to print
on a terminal: control characters are shown escaped, never sent.

A terminal obeys what it receives: an ESC sequence in a strategy id could clear the screen,
retitle the window, rewrite earlier lines or hide text, and rich passes such characters
through. :func:`safe_text` shows every C0 and C1 control character (ESC, BEL, backspace,
carriage return, newline...), DEL and the bidirectional overrides as Python escapes
(``\\x1b``, ``\\n``, ``\\u202e``); everything else, any script included, is left as it is.
:func:`safe_markup` also escapes rich markup, for values put into a markup string.

>>> print(safe_text("AAPL\\x1b[2J"))
AAPL\\x1b[2J
>>> safe_markup("[bold]x\\x07")
'\\\\[bold]x\\\\x07'
"""

from __future__ import annotations

import re

from rich.markup import escape

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, lines: bool = False) -> str:
    """``str(value)`` with control characters shown as escapes (see the module docstring);
    with ``lines``, newlines are kept (a message of several lines, each made safe).

    >>> safe_text("bad\\rreason\\n"), safe_text("déjà vu"), safe_text(42)
    ('bad\\\\rreason\\\\n', 'déjà vu', '42')
    >>> print(safe_text("one\\x07\\ntwo", lines=True))
    one\\x07
    two
    """
    text = str(value)
    if lines:
        return "\n".join(_CONTROL.sub(_escaped, line) for line in text.split("\n"))
    return _CONTROL.sub(_escaped, text)


def safe_markup(value: object, lines: bool = False) -> str:
    """:func:`safe_text` with rich markup escaped too: for a value inside a markup string (a
    table cell or title, ``console.print`` with markup on).

    >>> safe_markup("[red]id[/red]")
    '\\\\[red]id\\\\[/red]'
    """
    return escape(safe_text(value, lines))
