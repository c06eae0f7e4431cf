"""The book's one error type.

>>> str(BookError("x"))
'x'
"""

from __future__ import annotations

from qmtl.core.errors import QmtlError


class BookError(QmtlError, ValueError):
    """Input the book cannot use (a price that is not positive, a weight that is not finite,
    an unknown order); the message says what and where.

    >>> isinstance(BookError("x"), ValueError)
    True
    """
