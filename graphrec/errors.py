"""Exceptions with one-line, user-facing messages.

Every error graphrec raises on purpose derives from :class:`GraphrecError`; the CLI prints
``error: <message>`` on one line and exits with :attr:`GraphrecError.exit_code`. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path


class GraphrecError(Exception):
    """Base class of graphrec's expected errors (bad input, missing data, wrong state)."""

    exit_code: int = 1


class InputError(GraphrecError):
    """Bad input data: names the source (file), the line (1-based, as an editor shows it) and the problem."""

    exit_code = 2

    def __init__(self, problem: str, *, source: str | Path | None = None, line: int | None = None,
                 more: Sequence[tuple[int | None, str]] = (), total: int | None = None) -> None:
        self.problem = problem
        self.source = str(source) if source is not None else None
        self.line = line
        #: further problems of the same input shown after the first, as (line, problem)
        self.more = list(more)
        #: how many problems the input has in all (at least 1 + len(more))
        self.total = max(total or 0, 1 + len(self.more))
        where = ""
        if self.source is not None:
            where = self.source + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        message = f"{where}{problem}"
        if self.more:
            message += "; " + "; ".join(f"line {ln}: {p}" if ln is not None else p for ln, p in self.more)
        if self.total > 1:
            shown = 1 + len(self.more)
            message += f" ({self.total} problems in all" + (f", first {shown} shown)" if shown < self.total else ")")
        super().__init__(message)

    @classmethod
    def several(cls, problems: Sequence[tuple[int | None, str]], *, source: str | Path | None = None,
                total: int | None = None) -> "InputError":
        """One error for an input with several problems: ``problems`` are (line, problem) pairs,
        shown in line order (lines of None last); ``total`` counts every problem found, including
        those not listed. The message stays on one line: ``FILE:LINE: first; line L: second; ...
        (N problems in all, first K shown)``."""
        if not problems:
            raise ValueError("InputError.several needs at least one problem")
        ordered = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
        (line, first), rest = ordered[0], ordered[1:]
        return cls(first, source=source, line=line, more=rest, total=total if total is not None else len(problems))


class ConflictError(InputError):
    """The request contradicts what the store holds (a user that already exists, a flag that
    cannot change): bad input on the command line (exit code 2), ``409 Conflict`` over HTTP."""


class NotFoundError(GraphrecError):
    """A user (or other entity) the caller named does not exist in the store."""

    exit_code = 3


class StoreStateError(GraphrecError):
    """The database is not in a state the operation needs (not initialised, older schema, locked)."""

    exit_code = 4


class JobLockedError(GraphrecError):
    """Another batch job holds the job's lock: nothing was done; retry later.

    Exit code 75 is ``EX_TEMPFAIL`` (sysexits.h), which schedulers treat as "try again"."""

    exit_code = 75


class ConcurrentWriteError(GraphrecError):
    """Another writer changed the same rows at the same time (a deadlock, a serialisation failure,
    or a row it inserted first): this transaction was rolled back and nothing was written; retry.

    Exit code 75 (``EX_TEMPFAIL``), as for a held job lock: "try again"."""

    exit_code = 75


class FileSystemError(GraphrecError):
    """A file or folder graphrec was told to read or write cannot be used (missing, no permission,
    read-only file system, a folder where a file belongs): exit code 2, bad input. Other file-system
    failures (disk full, I/O error) exit 1, still as one line."""

    exit_code = 2


#: errnos that mean "this path cannot be used as given" (bad input, exit 2)
_PATH_ERRNOS = frozenset(getattr(errno, n) for n in ("ENOENT", "EACCES", "EPERM", "EISDIR", "ENOTDIR", "EROFS", "EEXIST",
                                                      "ENAMETOOLONG", "ELOOP", "ENXIO", "ETXTBSY") if hasattr(errno, n))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _driver_exception(exc: BaseException) -> BaseException | None:
    """The DB-API exception behind ``exc`` (SQLAlchemy wraps it as ``.orig``), or None."""
    if "sqlalchemy" in sys.modules:
        from sqlalchemy.exc import DBAPIError

        if isinstance(exc, DBAPIError):
            return exc.orig if exc.orig is not None else exc
    if isinstance(exc, sqlite3.Error):
        return exc
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.Error):
        return exc
    return None


def _driver_error(exc: BaseException) -> GraphrecError | None:
    raw = _driver_exception(exc)
    if raw is None:
        return None
    message = _first_line(raw)  # the driver's own first line: no SQL, no parameter values
    if isinstance(raw, sqlite3.Error):
        lower = message.lower()
        if "readonly database" in lower or "read-only" in lower:
            return StoreStateError(f"the SQLite store is read-only ({message}): nothing was written; reads work, "
                                   "writes need write permission on the file and its folder")
        if "not a database" in lower:
            return StoreStateError(f"the SQLite store is not a SQLite database ({message})")
        if isinstance(raw, sqlite3.DataError):
            return InputError(f"the database rejected a value: {message}")
        if isinstance(raw, sqlite3.OperationalError):  # locked, unable to open, disk I/O, ...
            return StoreStateError(f"database error: {message}")
        return None  # integrity and programming errors are bugs (SQLite serialises writers)
    sqlstate = str(getattr(raw, "sqlstate", None) or getattr(getattr(raw, "diag", None), "sqlstate", None) or "")
    if sqlstate in ("40P01", "40001", "23505"):
        return ConcurrentWriteError(f"another writer changed the store at the same time ({message}): nothing was written; retry")
    if sqlstate.startswith("22"):
        return InputError(f"the database rejected a value: {message}")
    from sqlalchemy.exc import OperationalError

    psycopg = sys.modules.get("psycopg")
    if isinstance(exc, OperationalError) or (psycopg is not None and isinstance(raw, psycopg.OperationalError)):
        return StoreStateError(f"database error: {message}")
    return None


def _file_error(exc: BaseException) -> GraphrecError | None:
    if not isinstance(exc, OSError) or isinstance(exc, (ConnectionError, TimeoutError)):
        return None
    what = exc.strerror or _first_line(exc)
    where = ": ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    err = FileSystemError(f"{where}: {what}" if where else what)
    if exc.errno not in _PATH_ERRNOS:
        err.exit_code = 1
    return err


def _safetensors_error(exc: BaseException) -> GraphrecError | None:
    if type(exc).__name__ == "SafetensorError" or type(exc).__module__.startswith("safetensors"):
        return StoreStateError(f"a model file is unreadable (safetensors: {_first_line(exc)}): retrain the model")
    return None


def is_store_error(exc: BaseException) -> bool:
    """True when ``exc`` comes from the database (a driver error, or the store's own "database
    error" / unreachable state): something to retry, not a fault of the caller's input or of
    a model file."""
    return _driver_exception(exc) is not None


def mapped_exception_types() -> tuple[type[Exception], ...]:
    """The exception classes :func:`expected_error` may map (graphrec's own, database drivers',
    file-system errors): what a front door catches to turn into its error form (the HTTP
    service registers its error handler for these). Anything else is a bug."""
    types: list[type[Exception]] = [GraphrecError, sqlite3.Error, OSError]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        types.append(SQLAlchemyError)
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        pass
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None:
        types.append(psycopg.Error)
    return tuple(types)


def expected_error(exc: BaseException) -> GraphrecError | None:
    """The :class:`GraphrecError` an operator should see for ``exc``, or None for a bug.

    graphrec's own errors map to themselves. The one place that maps the rest (the CLI uses it):

    * database driver errors (SQLAlchemy-wrapped or raw ``sqlite3`` / ``psycopg``), reported by the
      driver's first line, never the SQL or its parameter values: a database that cannot be reached
      or refuses (``OperationalError``), a read-only SQLite store and a file that is not a SQLite
      database are not-ready states (exit 4); a value the database rejects (SQLSTATE class 22) is
      bad input (exit 2); a deadlock, a serialisation failure or a unique violation from a
      concurrent writer is :class:`ConcurrentWriteError` (exit 75, retry);
    * file-system errors (``OSError``): :class:`FileSystemError` naming the path, exit 2 for a path
      that cannot be used as given, 1 for others (disk full, I/O error);
    * safetensors errors (a truncated or garbage model file): exit 4.

    Anything else returns None: a bug, which keeps its traceback."""
    if isinstance(exc, GraphrecError):
        return exc
    return _driver_error(exc) or _file_error(exc) or _safetensors_error(exc)
