"""Alembic environment: runs on the connection the exchange hands over (see exchange.store.migrate)."""
from __future__ import annotations

from alembic import context

from exchange.store.tables import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite",
                      on_version_apply=context.config.attributes.get("on_version_apply", []))
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
