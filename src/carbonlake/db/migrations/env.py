"""Alembic's environment: migrations run on the connection the database layer passes in
``config.attributes["connection"]`` (already inside its write transaction)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
