"""Alembic environment: always run from code with a connection in `config.attributes`."""

from __future__ import annotations

from alembic import context

from vigia.store.migrations import VERSION_TABLE
from vigia.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
