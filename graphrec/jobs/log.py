"""Job logging for schedulers: human-readable lines or JSON lines (``--log-format json``) on stderr.

Each JSON line is one event: ``{"ts": ISO-8601 UTC, "level": ..., "job": ..., "event": ..., ...}``,
so log shippers can index the fields without parsing prose.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any, TextIO


class JobLog:
    """Writes job events as text or JSON lines."""

    def __init__(self, job: str, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.job, self.fmt, self.stream = job, fmt, stream

    def event(self, event: str, level: str = "info", **fields: Any) -> None:
        stream = self.stream or sys.stderr
        ts = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        if self.fmt == "json":
            stream.write(json.dumps({"ts": ts, "level": level, "job": self.job, "event": event, **fields}, default=str) + "\n")
        else:
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            stream.write(f"{ts} {level.upper():5s} {self.job}: {event}{(' ' + extra) if extra else ''}\n")
        stream.flush()
