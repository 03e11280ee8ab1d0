"""Alembic environment: runs on the connection `community.db.migrate` passes in."""

from __future__ import annotations

from alembic import context

from community.db import load_schemas, metadata

load_schemas()
target_metadata = metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through community.db.migrate (quartier opens the database)")
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
