"""Bearer tokens with roles: viewer < developer < operator. Only a token's hash is stored.

>>> import tempfile, os
>>> from world_api.service.store import open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> token = create_token(store, "developer", "ci")
>>> token.startswith("qmtl_"), resolve(store, token)
(True, ('developer', 'ci'))
>>> allows("developer", "operator")
False
"""

from __future__ import annotations

import hashlib
import secrets

from world_api.service.store import Store

ROLES: dict[str, int] = {"viewer": 0, "developer": 1, "operator": 2}
"""Roles by rank: each role may do what the roles below it may."""


def hash_token(token: str) -> str:
    """The stored form of a token (sha256 hex).

    >>> len(hash_token("x"))
    64
    """
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, role: str, name: str = "") -> str:
    """A new random token with ``role``; only its hash is stored. Returns the token."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    token = "qmtl_" + secrets.token_urlsafe(32)
    store.add_token(hash_token(token), role, name or role)
    return token


def resolve(store: Store, token: str) -> tuple[str, str] | None:
    """``(role, name)`` of a token, or None when unknown."""
    return store.token(hash_token(token))


def allows(role: str, needed: str) -> bool:
    """True when ``role`` ranks at least ``needed``.

    >>> allows("operator", "viewer")
    True
    """
    return ROLES.get(role, -1) >= ROLES[needed]
