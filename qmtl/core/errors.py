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


class QmtlError(Exception):
    """The base of QMTL's errors: a message that says what was wrong and where.

    >>> str(QmtlError("no bars for AAPL"))
    'no bars for AAPL'
    """

    exit_code: int = 1
    """The CLI's exit status for this error (1 unless a subclass says otherwise)."""
