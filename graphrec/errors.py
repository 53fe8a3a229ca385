"""Exceptions with one-line, user-facing messages.

Every error graphrec raises on purpose derives from :class:`GraphrecError`; the CLI prints
``error: <message>`` on one line and exits with :attr:`GraphrecError.exit_code`. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class GraphrecError(Exception):
    """Base class of graphrec's expected errors (bad input, missing data, wrong state)."""

    exit_code: int = 1


class InputError(GraphrecError):
    """Bad input data: names the source (file), the line (1-based, as an editor shows it) and the problem."""

    exit_code = 2

    def __init__(self, problem: str, *, source: str | Path | None = None, line: int | None = None) -> None:
        self.problem = problem
        self.source = str(source) if source is not None else None
        self.line = line
        where = ""
        if self.source is not None:
            where = self.source + (f":{line}" if line is not None else "") + ": "
        elif line is not None:
            where = f"line {line}: "
        super().__init__(f"{where}{problem}")


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


def expected_error(exc: BaseException) -> GraphrecError | None:
    """The :class:`GraphrecError` an operator should see for ``exc``, or None for a bug.

    graphrec's own errors map to themselves. A database that cannot be reached or refuses the
    connection (SQLAlchemy ``OperationalError``) is a not-ready state, exit code 4, reported by the
    first line of the driver's message. Anything else returns None and keeps its traceback."""
    if isinstance(exc, GraphrecError):
        return exc
    from sqlalchemy.exc import OperationalError  # sqlalchemy is loaded whenever a store was opened

    if isinstance(exc, OperationalError):
        first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        return StoreStateError(f"database error: {first}")
    return None
