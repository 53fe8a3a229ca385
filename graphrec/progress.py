"""Progress reporting for long steps (training epochs, folds, stages), one helper for every task.

On a terminal (stderr is a TTY) a step shows a tqdm bar with its rate and ETA. Anywhere else (a
pipe, a log file, cron) it writes INFO log lines through the ``graphrec.progress`` logger instead:
one when the step starts, one at every further ~10% of its total and one when it ends, each with
the elapsed time and the ETA (``--log-level INFO`` shows them; with ``--log-format json`` each is a
JSON object with ``stage``, ``done``, ``total``, ``elapsed_s``, ``eta_s``, see :mod:`graphrec.logs`).
``GRAPHREC_PROGRESS=1`` forces bars on, ``GRAPHREC_PROGRESS=0`` forces them off (log lines then).

Use :func:`progress` for counted steps (``with progress("train linkpred", total=6, unit="epoch") as
p: ... p.update()``), :func:`track` to wrap an iterable, :func:`stage` for a step without a count
(a detector fit). :func:`progress_bar` is the plain bar the importers use (no log lines).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TypeVar

from tqdm.auto import tqdm

PROGRESS_ENV = "GRAPHREC_PROGRESS"
#: log a line each time a step passes another this share of its total
LOG_EVERY = 0.1

log = logging.getLogger("graphrec.progress")
T = TypeVar("T")


def progress_enabled() -> bool:
    """Whether bars show: ``GRAPHREC_PROGRESS`` when set, else whether stderr is a terminal."""
    forced = os.environ.get(PROGRESS_ENV)
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "off", "")
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def progress_bar(*, total: int | None = None, desc: str = "", unit: str = "it", **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, disabled unless stderr is a terminal (usable as a context manager)."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(), file=sys.stderr, leave=False, dynamic_ncols=True, **kwargs)


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    value = int(round(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


class Progress:
    """One step's progress: a bar on a terminal, INFO log lines (every ~10%) elsewhere.

    ``desc`` names the step (``train linkpred``), ``total`` counts its units (``unit``: epoch,
    fold, stage; None: unknown, a line per update at most every 10 s). :meth:`update` advances it
    (``info`` adds a short note such as the loss); closing it logs the total time."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "it") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.done = 0
        self.started = time.perf_counter()
        self._bar: tqdm | None = None
        self._next_log = 0.0
        self._last_log_time = self.started
        self._closed = False
        if progress_enabled():
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
        else:
            self._log(f"{desc}: started" + (f", {total} {unit}s" if total is not None else ""))
            self._next_log = LOG_EVERY

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def eta(self) -> float | None:
        """Seconds left at the mean rate so far (None before the first unit or without a total)."""
        if self.total is None or self.done <= 0:
            return None
        return self.elapsed / self.done * max(self.total - self.done, 0)

    def _log(self, message: str) -> None:
        log.info(message, extra={"fields": {"stage": self.desc, "done": self.done, "total": self.total, "unit": self.unit,
                                            "elapsed_s": round(self.elapsed, 2),
                                            "eta_s": None if self.eta() is None else round(float(self.eta() or 0.0), 2)}})

    def update(self, n: int = 1, info: str | None = None) -> None:
        """Advance by ``n`` units; ``info`` is shown beside the bar or in the log line."""
        self.done += n
        if self._bar is not None:
            if info:
                self._bar.set_postfix_str(info, refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.total:
            due = self.done / self.total >= self._next_log - 1e-9
        else:
            due = now - self._last_log_time >= 10.0
        if due and (not self.total or self.done < self.total):
            share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
            of = f"/{self.total}" if self.total else ""
            self._log(f"{self.desc}: {self.unit} {self.done}{of}{share}, {_seconds(self.elapsed)} elapsed, ETA {_seconds(self.eta())}"
                      + (f", {info}" if info else ""))
            self._last_log_time = now
            if self.total:
                while self._next_log <= self.done / self.total + 1e-9:
                    self._next_log += LOG_EVERY

    def close(self, info: str | None = None) -> None:
        """End the step: close the bar, or log ``<desc>: done in <time>``."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        else:
            self._log(f"{self.desc}: done in {_seconds(self.elapsed)}" + (f", {info}" if info else ""))

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self._closed = True
            if self._bar is not None:
                self._bar.close()
            else:
                self._log(f"{self.desc}: stopped after {_seconds(self.elapsed)} ({exc_type.__name__})")


def progress(desc: str, total: int | None = None, unit: str = "it") -> Progress:
    """A :class:`Progress` for a step of ``total`` ``unit``\\ s (use it as a context manager)."""
    return Progress(desc, total, unit)


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Yield ``items``, reporting one unit of progress per item (``total``: default ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit) as p:
        for item in items:
            yield item
            p.update()


@contextmanager
def stage(desc: str) -> Iterator[Progress]:
    """A step without a count (one unit): start and end lines, or a one-unit bar with its time."""
    with Progress(desc, 1, "stage") as p:
        yield p
        p.update()
