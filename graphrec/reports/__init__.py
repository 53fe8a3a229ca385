"""HTML reports of a graphrec store and its models (``graphrec report``, ``graphrec eval ...
--report DIR``, ``/reports/latest`` of ``graphrec serve``).

One self-contained page (inline CSS and PNG plots, no network fetches) with an index and a
section per model and for the latest runs: friend recommendation, bots, anomalies, embeddings,
synthetic users, generative models, training curves and the store
(:mod:`graphrec.reports.sections`). Plots share one look and the Okabe-Ito colour-blind-safe
palette (:mod:`graphrec.reports.style`). Importing this package is light (no torch, no
matplotlib): the builders are imported when a report is built.
"""

from __future__ import annotations

from graphrec.reports.build import SECTIONS, ReportResult, build_report, latest_report_path
from graphrec.reports.evaluations import run_evaluation

__all__ = ["SECTIONS", "ReportResult", "build_report", "latest_report_path", "run_evaluation"]
