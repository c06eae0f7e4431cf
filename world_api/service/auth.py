"""Bearer tokens with roles (viewer < developer < runner < operator), an owner, an optional expiry
and revocation; failed authentications are audited at a bounded rate.

A token is ``qmtl_<id>_<secret>``: ``id`` is 8 public hex digits (the audit log's actor,
what ``qmtl world token list`` shows and ``revoke`` takes), ``secret`` 256 random bits. The
store keeps only a salted SHA-256 of the whole token, ``sha256s$<salt>$<digest>``, and the
check compares digests in constant time. Tokens of an older store (``qmtl_<secret>``, kept as
an unsalted ``sha256$<digest>``) still work: their id is derived from that digest and their
hash is salted on first use. Why a fast salted hash and no server key: ``docs/security.md``.

>>> import tempfile, os
>>> from world_api.service.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> token = create_token(store, "developer", "ci")
>>> info = authenticate(store, token)
>>> token.startswith(f"qmtl_{info.id}_"), info.role, info.owner
(True, 'developer', 'ci')
>>> allows("developer", "operator")
False
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable

from qmtl.core.errors import QmtlError
from world_api.service.store import Conflict, Store, TokenInfo

ROLES: dict[str, int] = {"viewer": 0, "developer": 1, "runner": 2, "operator": 3}
"""Roles by rank: each role may do what the roles below it may. A ``runner`` (``qmtl world
run``) also reads strategies' artifacts, holds leases and posts the paper and live updates
of strategies the world holds, whoever owns them; it may not claim a new strategy nor do
an operator's work (``docs/security.md``)."""

ID_LENGTH = 8
"""Hex digits of a token id."""
_NEW_TOKEN = re.compile(r"qmtl_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
_SALTED, _LEGACY = "sha256s", "sha256"


class AuthError(QmtlError):
    """A token that does not authenticate: the message says why (for the 401)."""


def _digest(salt: bytes, token: str) -> str:
    return hashlib.sha256(salt + token.encode()).hexdigest()


def hash_token(token: str, salt: bytes | None = None) -> str:
    """The stored form of a token: ``sha256s$<salt hex>$<sha256(salt + token) hex>``, with
    a fresh 16-byte salt unless one is given.

    >>> hash_token("x", bytes(16)).split("$")[0], len(hash_token("x"))
    ('sha256s', 105)
    """
    salt = secrets.token_bytes(16) if salt is None else salt
    return f"{_SALTED}${salt.hex()}${_digest(salt, token)}"


def verify(token: str, stored: str) -> bool:
    """True when ``token`` hashes to ``stored`` (salted, or an old store's unsalted
    ``sha256$<digest>``); the digests are compared in constant time.

    >>> stored = hash_token("qmtl_x")
    >>> verify("qmtl_x", stored), verify("qmtl_y", stored)
    (True, False)
    >>> verify("old", "sha256$" + hashlib.sha256(b"old").hexdigest())
    True
    """
    scheme, _, rest = stored.partition("$")
    if scheme == _SALTED:
        salt_hex, _, want = rest.partition("$")
        try:
            salt = bytes.fromhex(salt_hex)
        except ValueError:
            return False
        got = _digest(salt, token)
    elif scheme == _LEGACY:
        want, got = rest, hashlib.sha256(token.encode()).hexdigest()
    else:
        return False
    return hmac.compare_digest(got.encode(), want.encode())


def token_id(token: str) -> str:
    """The public id of a token: the one it carries, or, for a token of the old form
    (``qmtl_<secret>``), the first 8 hex digits of its SHA-256 (what the store's migration
    gave its row).

    >>> token_id("qmtl_0a1b2c3d_" + "x" * 43)
    '0a1b2c3d'
    >>> token_id("qmtl_old") == hashlib.sha256(b"qmtl_old").hexdigest()[:8]
    True
    """
    m = _NEW_TOKEN.fullmatch(token)
    return m.group(1) if m else hashlib.sha256(token.encode()).hexdigest()[:ID_LENGTH]


def create_token(store: Store, role: str, owner: str = "", expires: int | None = None) -> str:
    """A new random token with ``role`` for ``owner`` (default: the role's name), valid until
    ``expires`` (epoch ns) if given; only its salted hash is stored. Returns the token: it
    is shown this once."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    now = time.time_ns()
    if expires is not None and expires <= now:
        raise ValueError(f"the expiry {iso(expires)} is not in the future")
    for _ in range(5):
        tid = secrets.token_hex(ID_LENGTH // 2)
        token = f"qmtl_{tid}_{secrets.token_urlsafe(32)}"
        info = TokenInfo(id=tid, owner=owner or role, role=role, created=now, expires=expires)
        try:
            store.add_token(info, hash_token(token))
        except Conflict:  # an id already taken (1 in 4 billion): draw again
            continue
        return token
    raise RuntimeError("could not draw a free token id")


def authenticate(store: Store, token: str, now: int | None = None) -> TokenInfo:
    """The record of the token, or :class:`AuthError` saying why not: unknown (or a wrong
    secret), revoked, or expired. An old store's unsalted hash is salted on this first use.
    """
    m = _NEW_TOKEN.fullmatch(token)
    if m:
        candidates = [m.group(1)]
    else:  # an old token: its row's id is its digest's first 8 hex digits, or more
        digest = hashlib.sha256(token.encode()).hexdigest()
        candidates = [digest[:k] for k in range(ID_LENGTH, len(digest) + 1)]
    for info, stored in store.tokens_with_ids(candidates):
        if not verify(token, stored):
            continue
        if stored.startswith(_LEGACY + "$"):
            store.rehash_token(info.id, stored, hash_token(token))
        return usable(info, now)
    if m is None and not token.startswith("qmtl_"):
        raise AuthError("unknown token: a QMTL token starts with 'qmtl_'")
    raise AuthError("unknown token")


def usable(info: TokenInfo, now: int | None = None) -> TokenInfo:
    """``info`` if its token may be used at ``now`` (epoch ns), else :class:`AuthError`
    saying it was revoked or has expired.

    >>> usable(TokenInfo(id="0a1b2c3d", owner="ci", role="viewer", created=0, expires=5), 9)
    Traceback (most recent call last):
    ...
    world_api.service.auth.AuthError: token 0a1b2c3d expired at 1970-01-01T00:00:00Z: ask ...
    """
    status = info.status(now)
    if status == "revoked":
        raise AuthError(f"token {info.id} was revoked at {iso(info.revoked)}")
    if status == "expired":
        raise AuthError(f"token {info.id} expired at {iso(info.expires)}: "
                        "ask for a new one (`qmtl world token create`)")
    return info


def resolve(store: Store, token: str) -> tuple[str, str] | None:
    """``(role, owner)`` of a token that authenticates, else None."""
    try:
        info = authenticate(store, token)
    except AuthError:
        return None
    return info.role, info.owner


def allows(role: str, needed: str) -> bool:
    """True when ``role`` ranks at least ``needed``.

    >>> allows("operator", "viewer")
    True
    """
    return ROLES.get(role, -1) >= ROLES[needed]


def iso(ns: int | None) -> str:
    """An epoch-ns time as an ISO UTC string (``-`` for None).

    >>> iso(0), iso(None)
    ('1970-01-01T00:00:00Z', '-')
    """
    if ns is None:
        return "-"
    t = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).replace(microsecond=0)
    return t.isoformat().replace("+00:00", "Z")


_DURATION = re.compile(r"([0-9]+)([mhdw])")
_UNIT_S = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_expiry(text: str, now: int | None = None) -> int:
    """An expiry (epoch ns) from a duration (``30m``, ``12h``, ``90d``, ``2w``) after ``now``
    or an ISO date or datetime (naive means UTC); ValueError saying what is accepted.

    >>> parse_expiry("1h", now=0) // 10**9
    3600
    >>> iso(parse_expiry("2030-01-02"))
    '2030-01-02T00:00:00Z'
    >>> parse_expiry("soon")
    Traceback (most recent call last):
    ...
    ValueError: expiry 'soon': use a duration (30m, 12h, 90d, 2w) or an ISO date or datetime
    """
    now = time.time_ns() if now is None else now
    m = _DURATION.fullmatch(text.strip())
    if m:
        return now + int(m.group(1)) * _UNIT_S[m.group(2)] * 10**9
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"expiry {text!r}: use a duration (30m, 12h, 90d, 2w) or an ISO "
                         "date or datetime") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp()) * 10**9 + when.microsecond * 1000


class FailureLimiter:
    """How many failed authentications get an audit row: at most ``per_source`` a minute
    from one source (client address) and ``total`` a minute from all, so a flood cannot
    fill the store. :meth:`allow` also says how many were dropped since the last one kept
    (a kept row carries that count).

    >>> lim = FailureLimiter(per_source=2, total=10, clock=lambda: 0.0)
    >>> [lim.allow("1.2.3.4") for _ in range(4)]
    [(True, 0), (True, 0), (False, 0), (False, 0)]
    >>> lim.clock = lambda: 60.0
    >>> lim.allow("1.2.3.4")
    (True, 2)
    """

    def __init__(self, per_source: int = 10, total: int = 100, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_source, self.total, self.window, self.clock = per_source, total, window, clock
        self._lock = threading.Lock()
        self._start: float | None = None
        self._counts: dict[str, int] = {}  # at most `total` sources: only kept rows count
        self._kept = 0
        self._dropped = 0

    def allow(self, source: str) -> tuple[bool, int]:
        """``(keep, dropped before)``: whether to audit this failure, and how many were
        dropped since the last one kept (reset when one is kept)."""
        with self._lock:
            now = self.clock()
            if self._start is None or now - self._start >= self.window:
                self._start, self._counts, self._kept = now, {}, 0
            if self._kept >= self.total or self._counts.get(source, 0) >= self.per_source:
                self._dropped += 1
                return False, 0
            self._counts[source] = self._counts.get(source, 0) + 1
            self._kept += 1
            dropped, self._dropped = self._dropped, 0
            return True, dropped


class TokenCache:
    """Tokens that authenticated, remembered for ``ttl`` seconds so a busy client is not one
    store read per request: a cached token's expiry is still checked on every use, and a
    revocation (``qmtl world token revoke``, which may run in another process) takes effect
    within ``ttl``. Only successes are kept (failures always ask the store); entries are
    keyed by the token's SHA-256, at most ``size`` of them.

    >>> import tempfile, os
    >>> from world_api.service.store import open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
    >>> token = create_token(store, "viewer")
    >>> cache = TokenCache(ttl=60)
    >>> cache.authenticate(store, token).role
    'viewer'
    >>> _ = store.revoke_token(cache.authenticate(store, token).id)
    >>> cache.authenticate(store, token).role  # still cached
    'viewer'
    >>> cache.clear()
    >>> cache.authenticate(store, token)
    Traceback (most recent call last):
    ...
    world_api.service.auth.AuthError: token ... was revoked at ...
    """

    def __init__(self, ttl: float = 2.0, size: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._seen: dict[bytes, tuple[float, TokenInfo]] = {}

    def authenticate(self, store: Store, token: str, now: int | None = None) -> TokenInfo:
        """:func:`authenticate`, answered from memory for a token that authenticated less
        than ``ttl`` seconds ago."""
        info = self.lookup(token, now)
        if info is not None:
            return info
        info = authenticate(store, token, now)
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[_key(token)] = (self.clock(), info)
        return info

    def lookup(self, token: str, now: int | None = None) -> TokenInfo | None:
        """The record of ``token`` if it authenticated less than ``ttl`` seconds ago (an
        :class:`AuthError` if it has expired since), else None: no store read."""
        hit = self._seen.get(_key(token))
        if hit is None or self.clock() - hit[0] >= self.ttl:
            return None
        return usable(hit[1], now)

    def clear(self) -> None:
        """Forget every token (the next use of each asks the store)."""
        self._seen.clear()


def _key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
