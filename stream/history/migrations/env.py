"""Alembic's environment for the history store: always given a connection by stream/history/migrate.py."""

from __future__ import annotations

from alembic import context

from stream.history.tables import metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it; Alembic's batch mode does that for us.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
