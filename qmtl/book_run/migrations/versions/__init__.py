"""The book store's Alembic history."""
