"""Alembic environment for the registry: migrations run on a connection handed in by the caller.

`maas.registry.database.upgrade` opens the connection, takes the lock that keeps two processes from
migrating at once, and passes the connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from maas.registry.schema import metadata


def run_migrations() -> None:
    """Run the pending migrations on the caller's connection, inside the caller's transaction."""
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
