"""The strategy id alphabet, defined once (pure: no I/O).

A new strategy id is normalized to Unicode NFC (so ``é`` typed as one code point and as
``e`` + a combining accent is one id) and must then consist of letters and digits (any
script: Unicode categories ``L*`` and ``Nd``, with combining marks ``M*`` after a letter)
and the punctuation ``. _ - : + = ,``; 1 to 200 characters. Everything else is refused:
``/``, ``?``, ``#``, ``%``, spaces, quotes, control characters, and the invisible and
bidirectional formatting characters (category ``Cf``: zero-width space U+200B, the
right-to-left override U+202E, ...) that make two different ids look alike.

Ids stored before this rule stay usable (see ``legacy_ids``); only new ones are checked.

>>> normalize("e\\u0301") == "\\u00e9"
True
>>> check_new("SmaCross-fast=20,slow=100")
'SmaCross-fast=20,slow=100'
>>> try:
...     check_new("evil/slash")
... except BadId as exc:
...     print(str(exc).split(";")[0])
strategy id 'evil/slash': character '/' (U+002F) at 4 is not allowed
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

PUNCTUATION = "._-:+=,"
"""The punctuation a strategy id may hold, besides letters and digits."""

MAX_LENGTH = 200
"""The longest strategy id (characters, after NFC)."""


class BadId(ValueError):
    """A strategy id outside the alphabet (the service answers 422 with this message).

    >>> str(BadId("x y", "character ' ' (U+0020) at 1 is not allowed"))[:17]
    "strategy id 'x y'"
    """

    def __init__(self, sid: str, why: str) -> None:
        super().__init__(
            f"strategy id {sid!r}: {why}; use letters, digits and {' '.join(PUNCTUATION)}"
        )
        self.sid = sid


def normalize(sid: str) -> str:
    """``sid`` in Unicode normal form C (what the world stores and looks up).

    >>> normalize("Caf\\u0065\\u0301")
    'Café'
    """
    return unicodedata.normalize("NFC", sid)


def problem(sid: str) -> str | None:
    """Why ``sid`` (taken as given, not normalized) is not a valid strategy id, or None.

    >>> problem("a:b"), problem("a\\u200bb")
    (None, "character '\\\\u200b' (U+200B) at 1 is not allowed")
    >>> problem(""), problem("\\u0301a")
    ('it is empty', "combining mark '\\u0301' (U+0301) at 0 does not follow a letter")
    """
    if not sid:
        return "it is empty"
    if set(sid) <= {"."}:
        return "it is only dots (a URL path segment '.' or '..' cannot name it)"
    if len(sid) > MAX_LENGTH:
        return f"it has {len(sid)} characters, more than {MAX_LENGTH}"
    for i, c in enumerate(sid):
        cat = unicodedata.category(c)
        if cat[0] == "L" or cat == "Nd" or c in PUNCTUATION:
            continue
        if cat[0] == "M":
            prev = unicodedata.category(sid[i - 1]) if i else ""
            if prev[:1] in ("L", "M"):
                continue
            return f"combining mark {c!r} (U+{ord(c):04X}) at {i} does not follow a letter"
        return f"character {c!r} (U+{ord(c):04X}) at {i} is not allowed"
    return None


def valid(sid: str) -> bool:
    """True when ``sid`` is in the alphabet and already in NFC.

    >>> valid("momo_3"), valid("a b"), valid("e\\u0301")
    (True, False, False)
    """
    return problem(sid) is None and normalize(sid) == sid


def check_new(sid: str) -> str:
    """The NFC form of ``sid`` if it is a valid new strategy id, else :class:`BadId`.

    >>> check_new("e\\u0301t\\u00e9") == "\\u00e9t\\u00e9"
    True
    """
    nfc = normalize(sid)
    why = problem(nfc)
    if why is not None:
        raise BadId(sid, why)
    return nfc


def legacy_ids(ids: Iterable[str]) -> list[str]:
    """The ids among ``ids`` that a new strategy could not have (stored before the rule),
    sorted; the service logs them on start and keeps them usable (``?id=`` routes).

    >>> legacy_ids(["ok", "evil/slash", "a?b"])
    ['a?b', 'evil/slash']
    """
    return sorted(s for s in ids if not valid(s))
