"""Origins from a short spec, as ``QMTL_ORIGIN`` and ``--origin`` give them.

>>> origin_from_spec("/srv/bars").name
'folder:/srv/bars'
"""

from __future__ import annotations

from connectors.data.ccxt_origin import CcxtOrigin
from connectors.data.origins import FolderOrigin, Origin


def origin_from_spec(spec: str) -> Origin:
    """An origin from a short spec: ``folder:PATH`` (or a bare path) or ``ccxt:EXCHANGE``
    (``QMTL_ORIGIN`` and ``--origin`` use this).

    >>> origin_from_spec("folder:/srv/bars").name
    'folder:/srv/bars'
    >>> origin_from_spec("ftp:x")
    Traceback (most recent call last):
    ...
    ValueError: unknown origin 'ftp:x': use folder:PATH or ccxt:EXCHANGE (e.g. ccxt:binance)
    """
    kind, sep, rest = spec.partition(":")
    if kind == "ccxt" and sep and rest:
        return CcxtOrigin(rest)
    if kind == "folder" and sep and rest:
        return FolderOrigin(rest)
    if not sep or kind.startswith(("/", ".", "~")):
        return FolderOrigin(spec)
    raise ValueError(
        f"unknown origin {spec!r}: use folder:PATH or ccxt:EXCHANGE (e.g. ccxt:binance)"
    )
