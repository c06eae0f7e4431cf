"""The world store's Alembic migrations, run by :func:`world_api.service.store.open_store`
(no ``alembic.ini``). A new revision: copy the latest file in ``versions/`` and chain it
with ``down_revision``."""
