"""Schema migrations: Alembic driven from code, so ``graphrec db upgrade`` needs no alembic.ini.

The revision scripts live in the repository's top-level ``migrations/`` folder, which is installed
as the ``graphrec.migrations`` package. The whole upgrade runs in one transaction on both SQLite
and PostgreSQL (both have transactional DDL), so a failed migration leaves the schema as it was.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from graphrec.errors import StoreStateError

if TYPE_CHECKING:  # pragma: no cover
    from alembic.config import Config

#: The newest migration revision this code expects. Kept as a constant so that checking the
#: schema does not import Alembic (~60 ms) on the serving path; a test asserts that it equals
#: the head of ``migrations/versions``.
SCHEMA_HEAD = "0001"


def migrations_dir() -> Path:
    """Folder holding ``env.py`` and ``versions/`` (installed package, or the source checkout)."""
    try:  # imported by name: the package exists only in an installed graphrec (pyproject maps it)
        pkg = importlib.import_module("graphrec.migrations")
        return Path(str(pkg.__file__)).resolve().parent
    except ImportError:  # running from a source tree without installation
        return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Connection | None = None) -> "Config":
    """An Alembic config pointing at graphrec's migrations, optionally bound to a connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision in ``migrations/versions`` (reads the scripts)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if len(rows) > 1:
        raise StoreStateError(f"database has several schema heads {sorted(rows)}: resolve the migration branches")
    return rows[0] if rows else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade to ``revision`` in one transaction; returns (revision before, revision after)."""
    from alembic import command

    with engine.begin() as conn:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), revision)
        after = current_revision(conn)
    return before, after


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Downgrade to ``revision`` (``base`` drops everything) in one transaction."""
    from alembic import command

    with engine.begin() as conn:
        before = current_revision(conn)
        command.downgrade(alembic_config(conn), revision)
        after = current_revision(conn)
    return before, after


def schema_status(engine: Engine) -> tuple[str | None, str]:
    """(current revision, head revision the code expects)."""
    with engine.connect() as conn:
        return current_revision(conn), SCHEMA_HEAD


def is_empty(engine: Engine) -> bool:
    """True when the database has no graphrec tables and no Alembic version."""
    with engine.connect() as conn:
        return current_revision(conn) is None and not inspect(conn).has_table("users")


def require_current(engine: Engine) -> None:
    """Raise :class:`StoreStateError` unless the schema is at the code's head revision."""
    current, head = schema_status(engine)
    if current == head:
        return
    if current is None:
        raise StoreStateError(f"database {engine.url.render_as_string()} is not initialised: run `graphrec db upgrade`")
    raise StoreStateError(
        f"database schema is at revision {current} but this graphrec expects {head}: run `graphrec db upgrade`"
    )
