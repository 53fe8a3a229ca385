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

from graphrec.errors import InputError, StoreStateError

if TYPE_CHECKING:  # pragma: no cover
    from alembic.config import Config

#: The newest migration revision this code expects. Kept as a constant so that checking the
#: schema does not import Alembic (~60 ms) on the serving path; a test asserts that it equals
#: the head of ``migrations/versions``.
SCHEMA_HEAD = "0003"


def migrations_dir() -> Path:
    """Folder holding ``env.py`` and ``versions/`` (installed package, or the source checkout)."""
    try:  # imported by name: the package exists only in an installed graphrec (pyproject maps it)
        pkg = importlib.import_module("graphrec.migrations")
        return Path(str(pkg.__file__)).resolve().parent
    except ImportError:  # running from a source tree without installation
        return Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(connection: Connection | None = None) -> "Config":
    """An Alembic config pointing at graphrec's migrations, optionally bound to a connection (then
    the database's revision must be one this graphrec knows: see :func:`unknown_revision_error`;
    every migration, and a downgrade's dry run, goes through here)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        current = current_revision(connection)
        error = unknown_revision_error(current) if current is not None else None
        if error is not None:
            raise error
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


def revision_history() -> list[tuple[str, str]]:
    """Every schema revision of ``migrations/versions``, oldest first: ``(revision, message)``."""
    from alembic.script import ScriptDirectory

    revs = list(ScriptDirectory.from_config(alembic_config()).walk_revisions())
    return [(r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "") for r in reversed(revs)]


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def unknown_revision_error(current: str, head: str = SCHEMA_HEAD) -> StoreStateError | None:
    """The error for a schema revision this graphrec has no migration for, or None for a known
    one. Revisions are numbered (``0001``, ``0002``, ...): a higher number than :data:`SCHEMA_HEAD`
    was written by a newer graphrec, so the fix is to upgrade graphrec (``db upgrade`` cannot go
    forwards and must not go back); any other unknown revision is not one of graphrec's."""
    if current == head or current in _known_revisions():
        return None
    if current.isdigit() and head.isdigit() and int(current) > int(head):
        return StoreStateError(f"database schema is at revision {current}, newer than this graphrec knows (it expects {head}): "
                               "the store was written by a newer graphrec; upgrade graphrec to use it (do not downgrade the schema)")
    return StoreStateError(f"database schema is at revision {current}, which this graphrec does not know (it expects {head}): "
                           "not a graphrec schema revision; restore the store from a backup or point --database-url at another store")


def _migrate(engine: Engine, revision: str, down: bool) -> tuple[str | None, str | None]:
    from alembic import command
    from alembic.util import CommandError

    with engine.begin() as conn:
        before = current_revision(conn)
        try:
            (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)
        except CommandError as exc:
            text_ = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot {'downgrade' if down else 'upgrade'} the schema to {revision!r}: {text_}") from None
        after = current_revision(conn)
    return before, after


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade to ``revision`` in one transaction; returns (revision before, revision after). A
    database at a revision this graphrec does not know (a newer graphrec's, or none of graphrec's)
    is a :class:`StoreStateError` and is left alone; an unknown target is an :class:`InputError`."""
    return _migrate(engine, revision, down=False)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Downgrade to ``revision`` (``base`` drops everything) in one transaction (checks as
    :func:`upgrade`)."""
    return _migrate(engine, revision, down=True)


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
    error = unknown_revision_error(current, head)
    if error is not None:
        raise error
    raise StoreStateError(
        f"database schema is at revision {current} but this graphrec expects {head}: run `graphrec db upgrade`"
    )
