"""The engines the nightly job runs on: how it reads the graph, scores it and writes the runs.

The job's steps, its lock, idempotent run dates, sanity guard and exit codes
(:mod:`graphrec.jobs.nightly`) are the same on every engine; only these three steps differ:

* ``local`` (:class:`LocalEngine`, the default): one snapshot in this process, each model's
  :meth:`~graphrec.tasks.base.ScoringModel.score_graph`, every run written in one transaction
  (:meth:`GraphStore.write_scoring_runs <graphrec.store.store.GraphStore.write_scoring_runs>`);
* ``ray`` (:class:`graphrec.distributed.nightly.RayEngine`): the snapshot streamed into Parquet
  partitions, the scoring as Ray stages over the partitions, each worker staging its scores, one
  short transaction publishing the runs (:meth:`GraphStore.publish_staged_runs
  <graphrec.store.store.GraphStore.publish_staged_runs>`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.distributed.engine import RayOptions
    from graphrec.jobs.nightly import FlagRateCheck
    from graphrec.store import RunInfo
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import Registered, ScoringModel, ScoreRun, Task, TaskConfig


@dataclass(frozen=True)
class GraphRead:
    """What the job read: sizes for the log, the store ``revision`` and the feature columns."""

    users: int
    friendships: int
    labelled: int
    revision: int
    feature_names: list[str]


@dataclass
class EngineScores:
    """One task's scores as the job needs them: ``users`` scored, ``flagged`` count, the
    ``threshold``, the flagged users' internal ids (to compare with the previous run), the sanity
    guard's figures and the run summary's task-specific part."""

    users: int
    flagged: int
    threshold: float
    flagged_user_ids: np.ndarray
    flag_check: "FlagRateCheck | None"
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunToWrite:
    """A scored task's run to write: its task name, kind, full summary and model run id."""

    task: str
    kind: str
    summary: dict[str, Any]
    model_run_id: int | None


class ScoringEngine(Protocol):
    """One engine's read, score and write steps (see the module docs)."""

    def supports(self, kind: str) -> bool: ...

    def discard_stale(self, store: "GraphStore") -> None: ...

    def read(self, store: "GraphStore") -> GraphRead: ...

    def retrain(self, store: "GraphStore", task: "Task[Any, Any]", config: "TaskConfig") -> "Registered[Any]": ...

    def score(self, task: str, model: "ScoringModel", *, threads: int | None, max_details: int, chunk: int) -> EngineScores: ...

    def write(self, store: "GraphStore", runs: Sequence[RunToWrite], *, run_date: dt.date, started_at: dt.datetime,
              lock: tuple[str, str], keep: int) -> "list[RunInfo]": ...

    def resources(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class LocalEngine:
    """The single-process engine: the whole snapshot in memory (see the module docs)."""

    def __init__(self) -> None:
        from graphrec.store.snapshot import Snapshot

        self.snap: Snapshot | None = None
        self._graph: Any = None
        self._scored: dict[str, ScoreRun] = {}

    def supports(self, kind: str) -> bool:
        return True

    def discard_stale(self, store: "GraphStore") -> None:
        """Nothing to clean: the local engine stages nothing."""

    def read(self, store: "GraphStore") -> GraphRead:
        from graphrec.core.graph import Graph

        self.snap = store.snapshot()
        self._graph = Graph.from_snapshot(self.snap, data_version=False)
        labelled = int(sum(lab is not None for lab in self.snap.labels.tolist()))
        return GraphRead(self.snap.num_nodes, self.snap.num_edges, labelled, self.snap.revision, list(self._graph.feature_names))

    def retrain(self, store: "GraphStore", task: "Task[Any, Any]", config: "TaskConfig") -> "Registered[Any]":
        from graphrec.tasks.base import train_and_register

        return train_and_register(store, task, config, snapshot=self.snap, serve=False)

    def score(self, task: str, model: "ScoringModel", *, threads: int | None, max_details: int, chunk: int) -> EngineScores:
        from graphrec.jobs.nightly import check_flag_rate

        assert self.snap is not None
        scored = model.score_graph(self._graph, threads=threads, max_details=max_details, chunk=chunk)
        flagged = np.asarray(scored.flagged, dtype=bool)
        check = check_flag_rate(model, self.snap.labels, self.snap.is_synthetic, flagged)
        self._scored[task] = scored
        return EngineScores(int(scored.scores.size), int(flagged.sum()), float(scored.threshold), self.snap.user_ids[flagged], check,
                            dict(scored.summary))

    def write(self, store: "GraphStore", runs: Sequence[RunToWrite], *, run_date: dt.date, started_at: dt.datetime,
              lock: tuple[str, str], keep: int) -> "list[RunInfo]":
        from graphrec.store import NewScoringRun

        assert self.snap is not None
        writes = []
        for run in runs:
            scored = self._scored[run.task]
            writes.append(NewScoringRun(run.kind, run_date, self.snap.user_ids, scored.scores, scored.flagged, scored.threshold,
                                        details=scored.details, model_run_id=run.model_run_id, summary=run.summary,
                                        started_at=started_at, replace=True))
        return store.write_scoring_runs(writes, lock=lock, keep=keep)

    def resources(self) -> dict[str, Any]:
        from graphrec.distributed.engine import peak_rss_mib

        return {"driver": peak_rss_mib()}

    def close(self) -> None:
        self.snap, self._graph, self._scored = None, None, {}


def open_engine(store: "GraphStore", name: str, *, ray_options: "RayOptions | None" = None, partitions: int | None = None,
                work_dir: str | None = None) -> ScoringEngine:
    """The engine called ``name`` (``local`` or ``ray``: :data:`graphrec.distributed.engine.ENGINES`)."""
    from graphrec.distributed.engine import check_engine

    if check_engine(name) == "local":
        return LocalEngine()
    from graphrec.distributed.nightly import RayEngine

    return RayEngine(store, options=ray_options, partitions=partitions, work_dir=work_dir)
