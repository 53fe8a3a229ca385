"""``graphrec eval <kind> [--report DIR]``: run a task's evaluation, keep its record (figures and
curve data, :mod:`graphrec.reports.evals`) and, with ``report_dir``, write that evaluation's
section of the report (:func:`graphrec.reports.build.build_report`) to ``report_dir``.

The task evaluations hand their curve data over beside the printed figures: ``curves`` in the
result dict of ``linkpred`` (taken out before printing) and the ``curves`` attribute of the
``bots`` and ``siamese`` reports. The printed figures are unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.reports.evals import EVAL_KINDS, record_eval

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


def _evaluate(kind: str, store: "GraphStore", options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    if kind == "linkpred":
        from graphrec.tasks.linkpred.evaluate import evaluate_from_store as linkpred

        data = dict(linkpred(store, **options))
        return data, data.pop("curves", {}) or {}
    if kind == "bots":
        from graphrec.tasks.bots.evaluate import evaluate_from_store as bots

        bot_report = bots(store, **options)
        return bot_report.as_dict(), dict(getattr(bot_report, "curves", None) or {})
    if kind == "siamese":
        from graphrec.tasks.siamese.evaluate import evaluate_from_store as siamese

        cold = siamese(store, **options)
        return cold.as_dict(), dict(getattr(cold, "curves", None) or {})
    raise ValueError(f"unknown evaluation kind {kind!r}: one of {', '.join(EVAL_KINDS)}")


def run_evaluation(kind: str, store: "GraphStore", *, report_dir: str | Path | None = None, **options: Any) -> dict[str, Any]:
    """Evaluate ``kind`` (``linkpred``, ``bots`` or ``siamese``; ``options`` go to that task's
    ``evaluate_from_store``), record it in ``GRAPHREC_HOME/evals`` and, with ``report_dir``, write
    the section's page there. Returns the printed figures (with ``report``: the page's path)."""
    from graphrec.reports.build import EVAL_SECTIONS, build_report

    result, curves = _evaluate(kind, store, options)
    record_eval(Path(store.settings.home), kind, result, curves)
    if report_dir is not None:
        written = build_report(store, report_dir, sections=[EVAL_SECTIONS[kind]], title=f"graphrec eval {kind}")
        result = {**result, "report": written.path}
    return result
