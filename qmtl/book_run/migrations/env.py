"""Alembic's entry point for the book store (see :meth:`qmtl.core.db.Database.migrate`)."""

from alembic import context

from qmtl.core.db import run_migrations

if hasattr(context, "config"):  # only inside an Alembic run (not when a test collector imports)
    run_migrations(context)
