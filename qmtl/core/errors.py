"""One base for every error QMTL reports to a user.

Each layer raises its own subclass (bad bars, a strategy that does not load, an unknown
world, a data source that has nothing), and the shells turn any :class:`QmtlError` into one
clear line: the CLI prints it and exits with :attr:`QmtlError.exit_code`, the world service
answers with its status. Subclasses also derive from the built-in error they refine
(``ValueError``, ``LookupError``, ``OSError``), so ``except ValueError`` keeps working.

>>> class BadThing(QmtlError, ValueError):
...     '''A thing is bad.'''
>>> err = BadThing("the thing at line 3 is bad")
>>> isinstance(err, QmtlError), isinstance(err, ValueError), err.exit_code
(True, True, 1)
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""``errno`` values of a write the disk (or the user's quota) has no room for."""


class QmtlError(Exception):
    """The base of QMTL's errors: a message that says what was wrong and where.

    >>> str(QmtlError("no bars for AAPL"))
    'no bars for AAPL'
    """

    exit_code: int = 1
    """The CLI's exit status for this error (1 unless a subclass says otherwise)."""


@contextlib.contextmanager
def writing(path: str | Path | None) -> Iterator[None]:
    """Name ``path`` in an ``OSError`` raised inside that does not name a file (a ``write``
    to an open file, Arrow's writers): the CLI then says which file could not be written,
    e.g. ``no space left on device: runs/x/.rows.bin``.

    >>> try:
    ...     with writing("runs/x/.rows.bin"):
    ...         raise OSError(errno.ENOSPC, "No space left on device")
    ... except OSError as exc:
    ...     exc.errno == errno.ENOSPC, exc.filename
    (True, 'runs/x/.rows.bin')
    """
    try:
        yield
    except OSError as exc:
        if path is None or exc.filename is not None or exc.errno is None:
            raise
        raise type(exc)(exc.errno, os.strerror(exc.errno), str(path)) from exc


def disk_full(exc: BaseException) -> OSError | None:
    """The ``OSError`` of a full disk in ``exc`` or what caused it (a step's error that
    Bytewax wrapped), or None.

    >>> disk_full(RuntimeError("wrapped")) is None
    True
    >>> try:
    ...     try:
    ...         raise OSError(errno.ENOSPC, "No space left on device", "f")
    ...     except OSError as inner:
    ...         raise RuntimeError("error writing output batch") from inner
    ... except RuntimeError as outer:
    ...     disk_full(outer).filename
    'f'
    """
    seen: set[int] = set()
    at: BaseException | None = exc
    while at is not None and id(at) not in seen:
        seen.add(id(at))
        if isinstance(at, OSError) and at.errno in DISK_FULL:
            return at
        at = at.__cause__ or at.__context__
    return None
