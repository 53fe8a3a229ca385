"""Process-wide logging set-up for the command line (standard :mod:`logging`).

Library modules log through their own logger (``log = logging.getLogger(__name__)``) and never
print; the application that embeds graphrec decides where records go. The ``graphrec`` command
calls :func:`configure_logging` once per process with ``--log-level`` (environment
``GRAPHREC_LOG_LEVEL``, default ``WARNING``): one line per record on stderr,
``LEVEL logger: message``. Batch jobs keep their own JSON-lines event log
(:class:`graphrec.jobs.log.JobLog`) on top of this.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

LOG_LEVEL_ENV = "GRAPHREC_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "WARNING"
FORMAT = "%(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not when the handler was
    made), so redirected or captured stderr (test runners, ``contextlib.redirect_stderr``) gets
    the records."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # StreamHandler.__init__ assigns it; stderr is always used
        pass


class _OneLine(logging.Formatter):
    """``LEVEL logger: message`` with newlines (including a traceback's) folded into `` | ``, so
    every record is exactly one line of stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return super().format(record).replace("\r", "").replace("\n", " | ")


_handler: _StderrHandler | None = None


def configure_logging(level: str | int = DEFAULT_LEVEL) -> None:
    """Send log records at ``level`` and above to stderr, one line each (idempotent: calling it
    again only changes the level). ``level`` is a name (``DEBUG`` ... ``CRITICAL``, any case) or a
    :mod:`logging` number; an unknown name is a ``ValueError``."""
    global _handler
    if isinstance(level, str):
        name = level.strip().upper()
        if name not in LEVELS:
            raise ValueError(f"unknown log level {level!r}: choose one of {', '.join(LEVELS)}")
        numeric = logging.getLevelName(name)
    else:
        numeric = int(level)
    root = logging.getLogger()
    if _handler is None or _handler not in root.handlers:
        _handler = _StderrHandler()
        _handler.setFormatter(_OneLine(FORMAT))
        root.addHandler(_handler)
    root.setLevel(numeric)
