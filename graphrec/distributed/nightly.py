"""The nightly job's ``ray`` engine (:class:`RayEngine`; the job itself is
:func:`graphrec.jobs.nightly.run_nightly` with ``engine_name="ray"``).

* **read**: the store streamed into Parquet partitions (:func:`~graphrec.distributed.partitions.write_partitions`)
  under ``work_dir`` (default: ``$GRAPHREC_HOME/distributed/snapshot``), ``partitions`` of them
  (default: :func:`default_partitions`);
* **score**: one Ray actor per partition (:class:`~graphrec.distributed.cluster.RayCluster`)
  runs the model's stages (:mod:`graphrec.distributed.bots`; the bot model is the one scoring
  model distributed so far, the job skips the others with a ``not distributed`` warning);
* **write**: after the sanity guard passed, every worker writes its partition's scores into the
  staging table (:meth:`GraphStore.stage_scores <graphrec.store.store.GraphStore.stage_scores>`,
  ``COPY`` on PostgreSQL) under a token of this job, then one transaction publishes every run
  (:meth:`GraphStore.publish_staged_runs <graphrec.store.store.GraphStore.publish_staged_runs>`),
  checking first that the job still holds its lock and that every user was staged exactly once.

A driver killed before the publish leaves the published tables as they were; its staged rows
are deleted by the next job that takes the lock (:meth:`discard_stale`). A worker killed mid-stage
is restarted by Ray and its call retried (:mod:`graphrec.distributed.cluster`).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.distributed.engine import RayOptions
from graphrec.errors import InputError
from graphrec.jobs.engines import EngineScores, GraphRead, RunToWrite

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.distributed.bots import PartitionedScores
    from graphrec.distributed.cluster import RayCluster
    from graphrec.store import RunInfo
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import Registered, ScoringModel, Task, TaskConfig

#: users per partition the default partition count aims at: a partition's worker then holds
#: about 500k users' rows and ~10M edge entries, whatever the graph's size (each worker process
#: also costs ~0.4 GiB of its own for Python, torch and Ray, so fewer, larger partitions waste less)
USERS_PER_PARTITION = 500_000


def default_partitions(users: int, workers: int) -> int:
    """At least one partition per worker, and enough that none holds more than
    :data:`USERS_PER_PARTITION` users."""
    return max(workers, -(-users // USERS_PER_PARTITION))


class RayEngine:
    """The nightly job's steps on Ray (see the module docs)."""

    def __init__(self, store: "GraphStore", *, options: RayOptions | None = None, partitions: int | None = None,
                 work_dir: str | os.PathLike[str] | None = None) -> None:
        from graphrec.distributed.engine import ray_session

        self.options = options or RayOptions()
        self.partitions = partitions
        self.work_dir = Path(work_dir) if work_dir is not None else Path(store.settings.home) / "distributed" / "snapshot"
        self.database_url = store.engine.url.render_as_string(hide_password=False)
        self._session = ray_session(self.options)
        self._session.__enter__()
        self.token = f"nightly-{uuid.uuid4().hex}"
        self.manifest: Any = None
        self._clusters: dict[str, RayCluster] = {}
        self._scores: dict[str, PartitionedScores] = {}
        self._thresholds: dict[str, float] = {}

    def supports(self, kind: str) -> bool:
        return kind == "bot"

    def discard_stale(self, store: "GraphStore") -> None:
        """Delete what a killed job staged: this job holds the lock, so no staged row is live."""
        store.discard_staged()

    def read(self, store: "GraphStore") -> GraphRead:
        from graphrec.distributed.partitions import write_partitions

        workers = self.options.workers
        self.manifest = write_partitions(store, self.work_dir, self.partitions or (lambda users: default_partitions(users, workers)))
        m = self.manifest
        return GraphRead(m.num_users, m.num_friendships, m.labelled, m.revision, list(m.feature_names))

    def retrain(self, store: "GraphStore", task: "Task[Any, Any]", config: "TaskConfig") -> "Registered[Any]":
        raise InputError("--retrain is not available on the ray engine yet: train with `graphrec train bots` "
                         "(or `--engine ray` there), then score")

    def score(self, task: str, model: "ScoringModel", *, threads: int | None, max_details: int, chunk: int) -> EngineScores:
        from graphrec.distributed.bots import BotScoringPartition, score_partitions
        from graphrec.distributed.cluster import RayCluster
        from graphrec.jobs.nightly import FlagRateCheck
        from graphrec.tasks.bots.model import BotModel

        if not isinstance(model, BotModel):  # pragma: no cover - the job asks supports() first
            raise InputError(f"the ray engine does not score {model.kind} models")
        cluster = RayCluster(BotScoringPartition, self.work_dir, self.manifest.partitions, model=model)
        self._clusters[task] = cluster
        scored = score_partitions(cluster, model, num_users=self.manifest.num_users, max_details=max_details)
        self._scores[task] = scored
        self._thresholds[task] = float(model.threshold)
        check = None
        if scored.learned_labelled:
            check = FlagRateCheck(model.positive_label, scored.flagged, scored.users, scored.learned_positives, scored.learned_labelled)
        return EngineScores(scored.users, scored.flagged, float(model.threshold), scored.flagged_user_ids, check,
                            {"labelled": scored.labelled, "engine": "ray", "partitions": self.manifest.partitions})

    def write(self, store: "GraphStore", runs: Sequence[RunToWrite], *, run_date: dt.date, started_at: dt.datetime,
              lock: tuple[str, str], keep: int) -> "list[RunInfo]":
        from graphrec.store.scores import StagedRun

        staged = []
        for run in runs:
            cluster, scored = self._clusters[run.task], self._scores[run.task]
            token = f"{self.token}-{run.task}"
            written = sum(cluster.get(cluster.stage("write_scores", self.database_url, token, run.kind, own={"prob": scored.prob})))
            if written != scored.users:
                raise RuntimeError(f"{run.task}: the workers staged {written} scores for {scored.users} users")
            staged.append(StagedRun(run.kind, run_date, token, scored.users, self._thresholds[run.task],
                                    details=scored.details, model_run_id=run.model_run_id, summary=run.summary, started_at=started_at,
                                    replace=True))
        return store.publish_staged_runs(staged, lock=lock, keep=keep)

    def resources(self) -> dict[str, Any]:
        """The driver's peak memory, and each live partition worker's (one list per task): its
        private peak (``<task>_workers``) and its peak with the object store's shared pages it
        mapped (``<task>_workers_with_object_store``), in MiB."""
        from graphrec.distributed.engine import peak_rss_mib

        out: dict[str, Any] = {"driver": peak_rss_mib()}
        for task, cluster in self._clusters.items():
            memory = cluster.get(cluster.stage("memory_mib"))
            out[f"{task}_workers"] = [m["private_peak"] for m in memory]
            out[f"{task}_workers_with_object_store"] = [m["peak"] for m in memory]
        return out

    def close(self) -> None:
        for cluster in self._clusters.values():
            cluster.close()
        self._clusters, self._scores = {}, {}
        self._session.__exit__(None, None, None)
