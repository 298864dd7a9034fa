"""Alembic environment: runs on the connection handed over by storage.migrate."""

from alembic import context

from storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `python main.py migrate`, not the alembic CLI")

# Batch mode lets ALTER TABLE work on SQLite by copying the table, and is a no-op elsewhere.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
