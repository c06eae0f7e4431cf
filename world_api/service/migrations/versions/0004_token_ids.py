"""Tokens get a public id, an owner, an expiry and a revocation time; the stored hash names
its scheme.

Before, a token was found by the unsalted SHA-256 of the whole token (the table's key) and
had a ``name``. Now each row is keyed by a short public ``id`` that new tokens carry in them
(``qmtl_<id>_<secret>``) and the hash is salted (``sha256s$<salt>$<digest>``, see
``world_api/service/auth.py``). The tokens already handed out cannot change, so their rows
keep the old hash, marked ``sha256$<digest>``, under an id derived from it (its first 8
hex digits, longer in the unlikely case two share them; see
:func:`world_api.service.auth.token_id`); the
hash is replaced by a salted one on the token's first use. ``name`` becomes ``owner``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LEGACY_ID_LENGTH = 8


def _columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("hash", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=True),
        sa.Column("revoked", sa.BigInteger(), nullable=True),
    ]


def legacy_ids(hashes: list[str]) -> dict[str, str]:
    """The id of each old row: the first 8 hex digits of its hash, longer where two would
    share one (so every row keeps a unique key).

    >>> legacy_ids(["abcdef0123", "abcdef0199", "11112222"])
    {'abcdef0123': 'abcdef012', 'abcdef0199': 'abcdef019', '11112222': '11112222'}
    """
    ids = {}
    for h in hashes:
        k = LEGACY_ID_LENGTH
        while k < len(h) and any(o != h and o[:k] == h[:k] for o in hashes):
            k += 1
        ids[h] = h[:k]
    return ids


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT hash, role, name, created FROM tokens")).all()
    op.drop_table("tokens")
    table = op.create_table("tokens", *_columns())
    ids = legacy_ids([r[0] for r in rows]) if rows else {}
    if rows:
        op.bulk_insert(table, [
            {"id": ids[h], "owner": name, "role": role, "hash": f"sha256${h}",
             "created": created, "expires": None, "revoked": None}
            for h, role, name, created in rows
        ])


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT hash, role, owner, created FROM tokens")).all()
    op.drop_table("tokens")
    table = op.create_table(
        "tokens",
        sa.Column("hash", sa.Text(), primary_key=True),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
    )
    # only the unsalted hashes of old tokens can go back; salted ones cannot be found by the
    # old code, so their tokens stop working after a downgrade
    op.bulk_insert(table, [
        {"hash": h.split("$", 1)[1], "role": role, "name": owner, "created": created}
        for h, role, owner, created in rows if h.startswith("sha256$")
    ])
