"""``graphrec report``: build the HTML report of a store and its models (:func:`build_report`).

Each section is a module of :mod:`graphrec.reports.sections` with a ``TITLE`` and a
``build(ctx) -> Section``; :data:`SECTIONS` is their order on the page. A section whose data is
absent says so (``Section.missing``) and the report is still written; a section that fails is
shown with its one-line error (and logged), so one broken plot never loses the rest. The page is
written atomically to ``<output>/index.html`` and copied to ``GRAPHREC_HOME/reports/latest.html``,
which ``graphrec serve`` answers at ``/reports/latest``.
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.errors import InputError
from graphrec.reports.html import Section, render_page

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)

#: section id -> module under graphrec.reports.sections, in page order
SECTIONS = ("linkpred", "bots", "anomaly", "embeddings", "synth", "generative", "training", "store")
#: the section each ``graphrec eval`` kind writes with ``--report``
EVAL_SECTIONS = {"linkpred": "linkpred", "bots": "bots", "siamese": "embeddings"}
LATEST_NAME = "latest.html"


@dataclass
class ReportResult:
    """What :func:`build_report` wrote: the page, the served copy, and each section's state."""

    path: str
    latest: str
    sections: dict[str, str] = field(default_factory=dict)  # id -> "complete" | "missing: ..." | "error: ..."
    bytes: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "latest": self.latest, "sections": dict(self.sections), "bytes": self.bytes, "seconds": self.seconds}


def build_section(section_id: str, ctx: Any) -> Section:
    """One section (:data:`SECTIONS`), or the section with its error when building it failed."""
    if section_id not in SECTIONS:
        raise InputError(f"unknown report section {section_id!r}: one of {', '.join(SECTIONS)}")
    module = importlib.import_module(f"graphrec.reports.sections.{section_id}")
    try:
        return module.build(ctx)
    except Exception as exc:  # one broken section must not lose the report; the error is shown and logged
        log.exception("report section %s failed", section_id)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return Section(section_id, module.TITLE, missing=f"this section could not be drawn: {type(exc).__name__}: {first}")


def latest_report_path(home: Path) -> Path:
    """Where the newest report is kept for ``graphrec serve`` (may not exist)."""
    return Path(home) / "reports" / LATEST_NAME


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def build_report(store: "GraphStore", output: str | Path, *, sections: tuple[str, ...] | list[str] | None = None,
                 title: str = "graphrec report") -> ReportResult:
    """Build the report (every section of :data:`SECTIONS`, or ``sections``) from what ``store``
    and its ``GRAPHREC_HOME`` hold, write ``<output>/index.html`` and the served copy."""
    from graphrec.reports.context import ReportContext

    t0 = time.perf_counter()
    wanted = list(SECTIONS if sections is None else sections)
    for s in wanted:
        if s not in SECTIONS:
            raise InputError(f"unknown report section {s!r}: one of {', '.join(SECTIONS)}")
    ctx = ReportContext(store)
    built = [build_section(s, ctx) for s in wanted]
    meta = {"store": store.engine.url.render_as_string(hide_password=True), "revision": store.revision()}
    page = render_page(title, built, meta=meta)
    path = Path(output) / "index.html"
    _write(path, page)
    latest = latest_report_path(ctx.home)
    _write(latest, page)
    states = {sec.id: "complete" if sec.missing is None else sec.missing for sec in built}
    return ReportResult(str(path), str(latest), states, len(page.encode("utf-8")), round(time.perf_counter() - t0, 2))
