"""The order store's Alembic migrations, run by
:func:`connectors.live.order_store.open_order_store` (no ``alembic.ini``). A new revision:
copy the latest file in ``versions/`` and chain it with ``down_revision``."""
