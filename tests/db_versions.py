"""Helpers for the stores' migration tests: make a database the way the code before
migrations did, and describe a database's tables to compare two of them."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import sqlalchemy as sa

SQLITE_SERIAL = "INTEGER PRIMARY KEY AUTOINCREMENT"
PG_SERIAL = "BIGSERIAL PRIMARY KEY"


def write_v0(url: str, ddl: list[str], rows: list[tuple[str, list[Any]]]) -> None:
    """Make a database the way the pre-migration code did (its DDL, ``?`` statements) with
    the plain drivers, not the code under test."""
    if url.startswith("postgresql"):
        base, _, schema = url.partition("?schema=")
        with psycopg.connect(base) as conn:
            conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            conn.execute(f'SET search_path TO "{schema}"')
            for stmt in ddl:
                conn.execute(stmt.replace("{serial}", PG_SERIAL))
            for sql, params in rows:
                conn.execute(sql.replace("?", "%s"), params)
        return
    with sqlite3.connect(url) as conn:
        for stmt in ddl:
            conn.execute(stmt.replace("{serial}", SQLITE_SERIAL))
        for sql, params in rows:
            conn.execute(sql, params)
    conn.close()


def table_shapes(store: Any, version_table: str) -> dict[str, Any]:
    """Per table: columns (name, type, nullable unless a key, default), the key, uniques."""
    out = {}
    with store.transaction() as conn:
        insp = sa.inspect(conn)
        for name in sorted(set(insp.get_table_names()) - {version_table, "schema_version"}):
            pk = insp.get_pk_constraint(name)["constrained_columns"]
            out[name] = (
                [(c["name"], str(c["type"]), c["nullable"] or c["name"] in pk,
                  str(c.get("default")).split("::")[0]) for c in insp.get_columns(name)],
                pk,
                sorted(tuple(u["column_names"]) for u in insp.get_unique_constraints(name)),
            )
    return out


def same_kind_of_float(ctx, _col, _meta_col, db_type, meta_type) -> bool | None:
    """SQLite reflects DOUBLE PRECISION as REAL (the same 8-byte storage there): not a
    difference; everything else is compared as Alembic does."""
    floats = isinstance(db_type, sa.Float) and isinstance(meta_type, sa.Float)
    if floats and ctx.dialect.name == "sqlite":
        return False
    return None


def drop_schema(url: str) -> None:
    """Drop the PostgreSQL schema a store URL names (``?schema=``); nothing for SQLite."""
    if url.startswith("postgresql"):
        base, _, schema = url.partition("?schema=")
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
