"""Exceptions with one-line, user-facing messages.

Every error graphrec raises on purpose derives from :class:`GraphrecError`; the CLI prints
``error: <message>`` on one line and exits with :attr:`GraphrecError.exit_code`. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

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
