"""Migrations: upgrade from empty, downgrade/upgrade round trip, models agree with migrations."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text

from graphrec.errors import StoreStateError
from graphrec.store import migrate
from graphrec.store.schema import metadata
from graphrec.store.store import GraphStore

TABLES = {
    "users",
    "feature_columns",
    "friendships",
    "blocks",
    "labels",
    "circles",
    "circle_members",
    "model_runs",
    "scoring_runs",
    "scores",
    "job_locks",
    "store_revision",
    "api_tokens",
    "score_staging",
}


def _partitions(conn: Connection) -> set[str]:
    """The partitions of partitioned tables (PostgreSQL, migration 0003): storage of a table of the
    schema (``friendships``, ``scores``), not tables of their own, though the inspector lists them."""
    if conn.dialect.name != "postgresql":
        return set()
    return set(conn.execute(text("SELECT relname FROM pg_class WHERE relispartition AND relkind = 'r' "
                                 "AND relnamespace = current_schema()::regnamespace")).scalars())


def _tables(store: GraphStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(inspect(conn).get_table_names()) - {"alembic_version"} - _partitions(conn)


def test_upgrade_from_empty_reaches_head(database_url: str) -> None:
    store = GraphStore(database_url)
    assert migrate.is_empty(store.engine)
    with pytest.raises(StoreStateError, match="not initialised"):
        store.check_schema()
    before, after = store.initialize()
    assert before is None and after == migrate.head_revision()
    assert _tables(store) == TABLES
    assert store.revision() == 0
    store.check_schema()


def test_downgrade_upgrade_round_trip(database_url: str) -> None:
    store = GraphStore(database_url)
    store.initialize()
    store.add_user("a")
    assert store.downgrade("base") == (migrate.SCHEMA_HEAD, None)
    assert _tables(store) == set()
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) is None
    status = store.schema_status()
    assert (status.current, status.head, status.up_to_date) == (None, migrate.SCHEMA_HEAD, False)
    with pytest.raises(StoreStateError, match="not initialised"):
        store.count_users()
    store.initialize()
    assert store.schema_status().as_dict() == {"database": store.engine.url.render_as_string(), "current": migrate.SCHEMA_HEAD,
                                               "head": migrate.SCHEMA_HEAD, "up_to_date": True}
    assert _tables(store) == TABLES
    assert store.count_users() == 0  # a fresh schema, nothing left over
    store.add_user("b")
    assert store.count_users() == 1


def test_models_match_migrations(database_url: str) -> None:
    store = GraphStore(database_url)
    store.initialize()
    with store.engine.connect() as conn:
        parts = _partitions(conn)
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": lambda obj, name, type_, *_: not (
            type_ == "table" and name in parts)})
        diff = compare_metadata(ctx, metadata)
    assert diff == []


def test_upgrade_is_transactional_on_failure(database_url: str) -> None:
    """A failing migration leaves the database exactly as it was (transactional DDL)."""
    store = GraphStore(database_url)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TABLE users (id INTEGER PRIMARY KEY)"))  # collides with revision 0001
    with pytest.raises(Exception):
        store.initialize()
    assert _tables(store) == {"users"}
    with store.engine.connect() as conn:
        assert migrate.current_revision(conn) is None


def test_schema_head_constant_matches_the_migration_scripts() -> None:
    assert migrate.SCHEMA_HEAD == migrate.head_revision()


def test_every_subpackage_ships_in_the_wheel() -> None:
    """pyproject lists packages explicitly (migrations/ is mapped into graphrec): a sub-package
    missing from the list would import in an editable install and fail in a real one."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "graphrec").rglob("__init__.py")}
    found |= {".".join(p.parent.relative_to(root).parts) for p in (root / "generative").rglob("__init__.py")}
    assert found <= listed, f"missing from pyproject packages: {sorted(found - listed)}"
