"""Process-wide logging set-up for the command line (standard :mod:`logging`).

Library modules log through their own logger (``log = logging.getLogger(__name__)``) and never
print; the application that embeds graphrec decides where records go. The ``graphrec`` command
calls :func:`configure_logging` once per process with ``--log-level`` (environment
``GRAPHREC_LOG_LEVEL``, default ``WARNING``): one line per record on stderr,
``LEVEL logger: message``, or with ``--log-format json`` (environment ``GRAPHREC_LOG_FORMAT``) one
JSON object per line, ``{"ts", "level", "logger", "message"}`` plus the fields a record carries in
``extra={"fields": {...}}`` (progress lines carry ``stage``, ``done``, ``total``, ``elapsed_s``,
``eta_s``), so log shippers index them without parsing prose. Batch jobs keep their own event log
(:class:`graphrec.jobs.log.JobLog`) on top of this, in the same format unless told otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import traceback
from typing import TextIO

LOG_LEVEL_ENV = "GRAPHREC_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
DEFAULT_LEVEL = "WARNING"
FORMAT = "%(levelname)s %(name)s: %(message)s"
LOG_FORMAT_ENV = "GRAPHREC_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
DEFAULT_LOG_FORMAT = "text"


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


class _JsonLines(logging.Formatter):
    """One JSON object per record: ``ts`` (ISO-8601 UTC), ``level``, ``logger``, ``message``, the
    record's ``extra={"fields": {...}}`` and ``exc`` (the traceback, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"), "level": record.levelname.lower(),
               "logger": record.name, "message": record.getMessage()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


_handler: _StderrHandler | None = None
_format: str = DEFAULT_LOG_FORMAT
_format_set = False  # set_log_format ran before the handler existed


def current_log_format() -> str:
    """The log format :func:`configure_logging` set last (``text`` or ``json``); before any call,
    ``GRAPHREC_LOG_FORMAT`` or ``text``."""
    return _format if _handler is not None or _format_set else _env_format()


def _env_format() -> str:
    value = os.environ.get(LOG_FORMAT_ENV, "").strip().lower()
    return value if value in LOG_FORMATS else DEFAULT_LOG_FORMAT


#: The logger of :mod:`graphrec.progress`'s log lines.
PROGRESS_LOGGER = "graphrec.progress"


def configure_logging(level: str | int = DEFAULT_LEVEL, fmt: str | None = None) -> None:
    """Send log records at ``level`` and above to stderr, one line each (idempotent: calling it
    again changes the level, and the format when ``fmt`` is given). ``level`` is a name (``DEBUG``
    ... ``CRITICAL``, any case) or a :mod:`logging` number; ``fmt`` is ``text`` or ``json`` (None:
    keep the current one; at first ``GRAPHREC_LOG_FORMAT`` or ``text``). An unknown name is a
    ``ValueError``."""
    global _handler, _format
    if fmt is not None and fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: choose one of {', '.join(LOG_FORMATS)}")
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
        _format = fmt or (_format if _format_set else _env_format())
        root.addHandler(_handler)
    elif fmt is not None:
        _format = fmt
    _handler.setFormatter(_JsonLines() if _format == "json" else _OneLine(FORMAT))
    root.setLevel(numeric)
    # Progress lines (graphrec.progress, written where no progress bar can be drawn: a pipe, a
    # log file) show at the default level too, so a long training is never a silent minute;
    # --log-level error or critical silences them with everything else.
    logging.getLogger(PROGRESS_LOGGER).setLevel(logging.INFO if numeric <= logging.WARNING else logging.NOTSET)


def set_log_format(fmt: str) -> None:
    """Switch the format of graphrec's log lines (``text`` or ``json``) without changing the level;
    takes effect now if :func:`configure_logging` already ran, else at its first call."""
    global _format, _format_set
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: choose one of {', '.join(LOG_FORMATS)}")
    _format, _format_set = fmt, True
    if _handler is not None:
        _handler.setFormatter(_JsonLines() if fmt == "json" else _OneLine(FORMAT))


def error_line(message: str, exit_code: int, exc: BaseException | None = None) -> str:
    """The line the ``graphrec`` command ends with on an error, in the current log format: text
    ``error: MESSAGE``, or with ``--log-format json`` one JSON object ``{"ts", "level": "error",
    "logger": "graphrec.cli", "message", "exit_code"}`` (plus ``exc``, the traceback, for a bug:
    ``exc``), so a JSON job log holds no plain-text line."""
    if current_log_format() != "json":
        return f"error: {message}"
    out: dict[str, object] = {"ts": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "level": "error",
                              "logger": "graphrec.cli", "message": message, "exit_code": exit_code}
    if exc is not None:
        out["exc"] = "".join(traceback.format_exception(exc))
    return json.dumps(out, default=str)
