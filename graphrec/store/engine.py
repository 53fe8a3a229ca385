"""Engine construction: one place that knows each backend's connection settings.

SQLite: foreign keys on, WAL journal (readers never block the writer), a busy timeout, and
*real* transactions: Python's sqlite3 module does not emit ``BEGIN`` before reads or DDL, so a
"transaction" would not give a consistent snapshot and DDL would auto-commit. Following the
SQLAlchemy documentation's pysqlite recipe, graphrec disables the driver's own transaction handling
and emits ``BEGIN`` itself (``BEGIN IMMEDIATE`` for write transactions, which take the write lock
up front instead of failing half-way).

Every engine is made with ``hide_parameters=True``: an error's message and traceback show the SQL
but never the bound values (user data). A URL whose driver is not installed, or that names a driver
SQLAlchemy does not know, is one ``error:`` line (:func:`make_engine`).

A SQLite store file is created honouring the process umask, like any file graphrec writes (exports,
model folders): mode ``0666 & ~umask`` (SQLite itself would cap it at 0644), so ``umask 077`` keeps
the store private; SQLite gives its ``-wal`` and ``-shm`` files the store's mode. A file that is not
a SQLite database is reported as such (:class:`~graphrec.errors.StoreStateError`), and a read-only
store (file mode, read-only mount, ``?mode=ro``) still serves reads.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import NoSuchModuleError
from sqlalchemy.pool import StaticPool

from graphrec.config import parse_database_url
from graphrec.errors import InputError, StoreStateError

_engines: dict[str, Engine] = {}
_lock = threading.Lock()

#: Execution option naming the SQLite BEGIN mode for a connection ("DEFERRED" or "IMMEDIATE").
SQLITE_BEGIN_OPTION = "graphrec_sqlite_begin"


def make_engine(database_url: str) -> Engine:
    """Create a new engine for ``database_url`` with graphrec's per-backend settings (a malformed
    or unsupported URL is an :class:`~graphrec.errors.InputError`, see
    :func:`graphrec.config.parse_database_url`)."""
    url = parse_database_url(database_url)
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    shown = url.render_as_string(hide_password=True)
    in_memory = url.database in (None, "", ":memory:")
    if url.get_backend_name() == "sqlite":
        if in_memory:
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        else:
            kwargs["connect_args"] = {"timeout": 60}
    elif url.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except NoSuchModuleError:
        raise InputError(f"unknown database driver {url.drivername!r} in {shown!r}: use sqlite:///PATH or "
                         "postgresql+psycopg://USER@HOST:PORT/DB") from None
    except ImportError as exc:
        raise StoreStateError(f"database driver for {url.drivername!r} is not installed ({exc}): install it, or use "
                              "postgresql+psycopg:// (psycopg 3, installed with graphrec)") from None
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, in_memory=in_memory)
    return engine


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


def _create_store_file(path: str) -> None:
    """Create an empty SQLite file (a valid, empty database) with mode ``0666 & ~umask``, if it
    does not exist yet; SQLite would create it 0644 whatever the umask allows or forbids."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return
    os.close(fd)


def _configure_sqlite(engine: Engine, *, in_memory: bool) -> None:
    database = engine.url.database or ""

    @event.listens_for(engine, "do_connect")
    def _on_do_connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> None:
        if not in_memory and not cparams.get("uri") and not database.startswith("file:"):
            _create_store_file(database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA busy_timeout = 60000")
            if not in_memory:
                try:
                    cursor.execute("PRAGMA journal_mode = WAL")
                    cursor.execute("PRAGMA synchronous = NORMAL")
                except sqlite3.OperationalError as exc:
                    if "readonly" not in str(exc):
                        raise  # a read-only store keeps its journal mode and serves reads
        except sqlite3.DatabaseError as exc:
            if "not a database" in str(exc):
                raise StoreStateError(f"{database} is not a SQLite database ({exc}): point --database-url or "
                                      "GRAPHREC_DATABASE_URL at a graphrec store") from None
            raise
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")
