"""Alembic environment for graphrec.

graphrec calls Alembic with an open connection in ``config.attributes["connection"]`` (see
:mod:`graphrec.store.migrate`) so the upgrade joins the caller's transaction. Run from the command
line (``alembic upgrade head`` in the repository root) it opens its own engine from
``GRAPHREC_DATABASE_URL`` with the same per-backend settings graphrec uses.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from graphrec.config import Settings
from graphrec.store.engine import make_engine
from graphrec.store.schema import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade head --sql``)."""
    url = config.get_main_option("sqlalchemy.url") or Settings.resolve().database_url
    context.configure(url=url, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or Settings.resolve().database_url
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _configure(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
