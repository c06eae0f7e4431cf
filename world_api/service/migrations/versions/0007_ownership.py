"""Strategies get owners: ``strategy_owners`` (world, strategy_id, owner, since) and
``world_submitters`` (world, owners: a JSON list).

A strategy belongs to the token owner that first submitted it. For a store made before,
the owner is taken from the audit log where it is known: the oldest ``post_metrics`` row
naming the strategy (``detail.strategies``) whose actor is a token still in ``tokens``
gives that token's owner. A stored strategy with no such row (posted in insecure dev mode,
by a deleted token, or before the audit named strategies) is operator-owned (``owner``
NULL): developers get 403 on it until an operator transfers it.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import json
import time

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def first_owners(
    rows: list[tuple[str, str, str]], owners: dict[str, str]
) -> dict[tuple[str, str], str]:
    """``(world, strategy) -> owner`` from audit rows ``(world, actor, detail)`` in
    ``id`` order, the actors mapped by ``owners`` (token id -> owner); the first row whose
    actor is known wins.

    >>> first_owners([("w", "t9", '{"strategies": ["a"]}'),
    ...               ("w", "t1", '{"strategies": ["a", "b"]}'),
    ...               ("w", "t2", '{"strategies": ["b"]}')], {"t1": "alice", "t2": "bob"})
    {('w', 'a'): 'alice', ('w', 'b'): 'alice'}
    """
    found: dict[tuple[str, str], str] = {}
    for world, actor, detail in rows:
        owner = owners.get(actor)
        if owner is None:
            continue
        try:
            sids = json.loads(detail).get("strategies") or []
        except (ValueError, AttributeError):
            continue
        for sid in sids:
            if isinstance(sid, str):
                found.setdefault((world, sid), owner)
    return found


def upgrade() -> None:
    table = op.create_table(
        "strategy_owners",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("strategy_id", sa.Text(), primary_key=True),
        sa.Column("owner", sa.Text(), nullable=True),
        sa.Column("since", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "world_submitters",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("owners", sa.Text(), nullable=False),
    )
    conn = op.get_bind()
    states = conn.execute(sa.text("SELECT world, strategy_id FROM strategy_state")).all()
    if not states:
        return
    owners = dict(conn.execute(sa.text("SELECT id, owner FROM tokens")).all())
    audit = conn.execute(
        sa.text(
            "SELECT world, actor, detail FROM audit WHERE action = 'post_metrics' "
            "AND world IS NOT NULL ORDER BY id"
        )
    ).all()
    found = first_owners([(str(w), str(a), str(d)) for w, a, d in audit], owners)
    now = time.time_ns()
    op.bulk_insert(
        table,
        [
            {"world": w, "strategy_id": s, "owner": found.get((w, s)), "since": now}
            for w, s in states
        ],
    )


def downgrade() -> None:
    op.drop_table("world_submitters")
    op.drop_table("strategy_owners")
