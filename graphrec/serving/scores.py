"""Reading what the nightly scoring job wrote (SQL reads; torch only to score the live graph).

* :func:`top_bots`: the likeliest bots of the latest complete bot run, with the signals behind
  each (``graphrec bots``);
* :func:`top_anomalies`: the most anomalous users of the latest complete anomaly run, or of the
  live graph under the served anomaly model (:func:`live_anomalies`; ``graphrec anomalies``);
* :func:`export_scores`: every user's score of the latest complete run of a scoring kind, as CSV
  (``graphrec scores export``).

Readers only ever see complete runs (:mod:`graphrec.store.scores`), so while a job writes they
keep the previous run. Every read goes through a :class:`~graphrec.store.store.GraphStore`
scoring-run method (no transaction is opened here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphrec.errors import InputError, StoreStateError
from graphrec.serving.freshness import Freshness, artifact_freshness, of_run

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store import RunInfo
    from graphrec.store.store import GraphStore

#: The scoring-run kinds these readers show.
BOT_KIND = "bot"
ANOMALY_KIND = "anomaly"

#: The scoring kinds the serving reads know (spelled here: :func:`scoring_kinds` would import the
#: tasks, and with them torch, into a server process).
SERVED_SCORE_KINDS = (BOT_KIND, ANOMALY_KIND)

#: How to produce a run, named in the error when there is none.
NIGHTLY_HINT = "run the nightly job first: `graphrec score` (or its alias `graphrec score-bots`)"


def scoring_kinds() -> list[str]:
    """The scoring-run kinds the registered scoring tasks write (``bot``, ``anomaly``)."""
    from graphrec.tasks.registry import scoring_task_names, task_class

    return [task_class(name).kind for name in scoring_task_names()]


def no_run(kind: str) -> StoreStateError:
    """The error for a store without a complete run of ``kind`` (names the command that writes one)."""
    return StoreStateError(f"no complete {kind} scoring run in the store: {NIGHTLY_HINT}")


def latest_run(store: "GraphStore", kind: str) -> "RunInfo":
    """The latest complete run of ``kind``; :class:`StoreStateError` (with the command that
    produces one) when there is none."""
    run = store.latest_run(kind)
    if run is None:
        raise no_run(kind)
    return run


@dataclass
class TopBots:
    """The highest bot scores of one run: each item ``{"user", "score", "flagged", "signals"}``."""

    run_id: int
    run_date: dt.date
    threshold: float | None
    bots: list[dict[str, Any]] = field(default_factory=list)
    #: the run's and its model's store revisions against the store's now (:mod:`graphrec.serving.freshness`)
    freshness: list[Freshness] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_date": self.run_date.isoformat(), "threshold": self.threshold, "bots": self.bots,
                "freshness": [f.as_dict() for f in self.freshness]}


def top_bots(store: "GraphStore", *, top: int = 20) -> TopBots:
    """The ``top`` most likely bots of the latest complete bot run, highest score first, each
    with the signals the job recorded (friends, clustering, labelled friends, label)."""
    found = store.latest_top_scores(BOT_KIND, top)
    if found is None:
        raise no_run(BOT_KIND)
    run, rows = found
    items = [{"user": ext, "score": round(score, 6), "flagged": flagged, "signals": details or {}} for ext, score, flagged, details in rows]
    return TopBots(run.id, run.run_date, run.threshold, items, run_freshness(store, run))


def run_freshness(store: "GraphStore", run: "RunInfo") -> list[Freshness]:
    """How stale a scoring run is: the store revision it scored against the store's now, and the
    same for the model that scored it (when its artifact is still there)."""
    current = store.revision()
    out = [of_run(run.kind, run.id, run.summary, current)]
    version = (run.summary or {}).get("model_version")
    model = artifact_freshness(store, run.kind, str(version), store_revision=current) if version else None
    return out + ([model] if model is not None else [])


@dataclass
class TopAnomalies:
    """The most anomalous users: ``source`` (``run N of DATE`` or ``live, model VERSION``), the
    flagging threshold, and items ``{"user", "score", "flagged", **explanation}``."""

    source: str
    threshold: float | None
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    #: the run's (or the live model's) store revision against the store's now
    freshness: list[Freshness] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "threshold": self.threshold, "anomalies": self.anomalies,
                "freshness": [f.as_dict() for f in self.freshness]}


def top_anomalies(store: "GraphStore", *, top: int = 20, live: bool = False, threads: int | None = None,
                  live_fallback: bool = True) -> TopAnomalies:
    """The ``top`` most anomalous users with why (the view that drives the score, the features
    that fit worst): from the latest complete anomaly run, or, with ``live`` or when there is no
    run yet, by scoring the store's current graph with the served anomaly model (``threads``:
    torch threads; nothing is written). ``live_fallback=False`` (the HTTP service: scoring the
    whole graph is a batch job, not a request) makes a store without a run a
    :class:`StoreStateError` instead."""
    found = None if live else store.latest_top_scores(ANOMALY_KIND, top)
    if found is None and not live and not live_fallback:
        raise no_run(ANOMALY_KIND)
    if found is not None:
        run, rows = found
        items = [{"user": ext, "score": round(score, 6), "flagged": flagged, **(details or {})} for ext, score, flagged, details in rows]
        return TopAnomalies(f"run {run.id} of {run.run_date.isoformat()}", run.threshold, items, run_freshness(store, run))
    return live_anomalies(store, top=top, threads=threads)


def live_anomalies(store: "GraphStore", *, top: int = 20, threads: int | None = None, version: str | None = None) -> TopAnomalies:
    """Score the store's current graph (synthetic users included) with the served (or given)
    anomaly model and explain the ``top`` users; nothing is written. The store's feature columns
    must be the model's (:class:`StoreStateError` otherwise, as when there is no model)."""
    import numpy as np

    from graphrec import artifacts
    from graphrec.core.graph import Graph
    from graphrec.tasks.anomaly.model import AnomalyModel

    if version is None and artifacts.latest_version(store.settings.home, ANOMALY_KIND) is None:
        raise StoreStateError("no anomaly model and no anomaly scoring run: run `graphrec train anomaly` first")
    model = AnomalyModel.load(store.settings.home, version)
    graph = Graph.from_snapshot(store.snapshot(), data_version=False)
    model.check_compatible(graph.feature_names, retrain_hint="graphrec train anomaly")
    scored = model.score_graph(graph, threads=threads, max_details=top, explain_top=top)
    order = np.argsort(-scored.scores, kind="stable")[:top]
    items = [{"user": graph.external_id(i), "score": round(float(scored.scores[i]), 6), "flagged": bool(scored.flagged[i]),
              **scored.details[int(i)]} for i in order.tolist()]
    fresh = artifact_freshness(store, ANOMALY_KIND, model.version)
    return TopAnomalies(f"live, model {model.version}", float(scored.threshold), items, [fresh] if fresh is not None else [])


def user_scores(store: "GraphStore", user: str) -> dict[str, Any]:
    """``GET /v1/users/{id}/scores``: the user's score in the latest complete run of every scoring
    kind, with the run it comes from: ``{"user", "scores": {kind: {"run_id", "run_date",
    "threshold", "model_version", "score", "flagged", "details"} or None}}``. A kind is None when
    it has no complete run; ``score`` is None when the run did not score the user (created since).
    :class:`~graphrec.errors.NotFoundError` for an unknown or deleted user."""
    found = store.latest_user_scores(user, SERVED_SCORE_KINDS)
    out: dict[str, Any] = {}
    for kind, hit in found.items():
        if hit is None:
            out[kind] = None
            continue
        run, row = hit
        out[kind] = {"run_id": run.id, "run_date": run.run_date.isoformat(), "threshold": run.threshold,
                     "model_version": (run.summary or {}).get("model_version"),
                     "score": None if row is None else round(row.score, 6), "flagged": None if row is None else row.flagged,
                     "details": None if row is None else row.details}
    return {"user": str(user).strip(), "scores": out}


@dataclass
class ScoreExport:
    """What :func:`export_scores` wrote."""

    kind: str
    run_id: int
    run_date: dt.date
    rows: int
    output: Path

    def as_dict(self) -> dict[str, Any]:
        return {"exported": f"{self.kind} scores", "run_id": self.run_id, "run_date": self.run_date.isoformat(), "rows": self.rows,
                "output": str(self.output)}


def export_scores(store: "GraphStore", kind: str, output: str | Path) -> ScoreExport:
    """Write ``id,score,is_synthetic`` for every user of the latest complete run of ``kind`` to
    the CSV file ``output`` (atomically: the file appears complete or not at all), reading the
    run in one transaction. ``kind`` must be a scoring kind (:func:`scoring_kinds`)."""
    kinds = scoring_kinds()
    if kind not in kinds:
        raise InputError(f"unknown scoring kind {kind!r}: choose one of {', '.join(kinds)}")
    output = Path(output)
    written = store.export_scores(kind, output)
    if written is None:
        raise no_run(kind)
    run, count = written
    return ScoreExport(kind, run.id, run.run_date, count, output)
