"""Engine construction: one place that knows each backend's connection settings.

SQLite: foreign keys on, WAL journal (readers never block the writer), a busy timeout, and
*real* transactions: Python's sqlite3 module does not emit ``BEGIN`` before reads or DDL, so a
"transaction" would not give a consistent snapshot and DDL would auto-commit. Following the
SQLAlchemy documentation's pysqlite recipe, graphrec disables the driver's own transaction handling
and emits ``BEGIN`` itself (``BEGIN IMMEDIATE`` for write transactions, which take the write lock
up front instead of failing half-way).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import StaticPool

from graphrec.config import parse_database_url

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

#: Execution option naming the SQLite BEGIN mode for a connection ("DEFERRED" or "IMMEDIATE").
SQLITE_BEGIN_OPTION = "graphrec_sqlite_begin"


def make_engine(database_url: str) -> Engine:
    """Create a new engine for ``database_url`` with graphrec's per-backend settings (a malformed
    or unsupported URL is an :class:`~graphrec.errors.InputError`, see
    :func:`graphrec.config.parse_database_url`)."""
    url = parse_database_url(database_url)
    kwargs: dict[str, Any] = {"future": True}
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["connect_args"] = {"timeout": 60}
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=url.database in (None, "", ":memory:"))
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    return create_engine(url, **kwargs)


def get_engine(database_url: str) -> Engine:
    """A process-wide shared engine per URL (engines own connection pools: reuse them)."""
    with _lock:
        engine = _engines.get(database_url)
        if engine is None:
            engine = _engines[database_url] = make_engine(database_url)
        return engine


def dispose_engine(database_url: str) -> None:
    """Dispose of and forget the shared engine for ``database_url`` (if any)."""
    with _lock:
        engine = _engines.pop(database_url, None)
    if engine is not None:
        engine.dispose()


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 60000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
