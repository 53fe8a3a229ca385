"""The nightly scoring job (``graphrec score-bots``), built for cron or Airflow.

Steps: take the ``score-bots`` lock (:mod:`graphrec.store.locks`); skip if complete runs for the
run date exist (idempotent; ``replace`` recomputes them); read a consistent snapshot; load the
served bot model (or retrain it first with ``retrain``); score every user by whole-graph,
layer-wise, chunked inference; when an anomaly model has been trained (``graphrec train
anomaly``), score every user for anomalies too, on the same snapshot; write the bot run, the
anomaly run and every score in one transaction that first checks the lock is still held;
release the lock.

Crash safety: nothing is written before the final transaction, and that transaction holds the
whole run, so a job killed at any moment leaves the previous complete run in place; readers see it
until the new run commits. A killed job's lock row is taken over by the next run (dead pid on the
same host, or expiry).

Exit codes (CLI): 0 done or already done; 2 bad option; 4 store or model not ready (no labels,
no model, feature columns changed); 75 another run holds the lock (retry later); 1 unexpected.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphrec.jobs.log import JobLog

JOB = "score-bots"
KIND = "bot"


@dataclass
class ScoreBotsResult:
    """What the job did; ``as_dict`` is the printed summary."""

    status: str  # complete | skipped | dry-run
    run_date: dt.date
    run_id: int | None = None
    model_version: str | None = None
    users_scored: int = 0
    flagged: int = 0
    newly_flagged: int = 0
    no_longer_flagged: int = 0
    threshold: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    anomalies: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_date": self.run_date.isoformat(),
            "run_id": self.run_id,
            "model_version": self.model_version,
            "users_scored": self.users_scored,
            "flagged": self.flagged,
            "newly_flagged": self.newly_flagged,
            "no_longer_flagged": self.no_longer_flagged,
            "threshold": self.threshold,
            "anomalies": self.anomalies,
            "seconds": {k: round(v, 2) for k, v in self.timings.items()},
        }


def score_bots(
    store: Any,
    *,
    run_date: dt.date | None = None,
    retrain: bool = False,
    dry_run: bool = False,
    replace: bool = False,
    seed: int = 0,
    chunk: int = 200_000,
    threads: int | None = None,
    keep_runs: int = 7,
    max_details: int = 10_000,
    train_config: Any = None,
    anomalies: bool = True,
    log: JobLog | None = None,
) -> ScoreBotsResult:
    """Run the job once; see the module docstring. ``train_config`` (a
    :class:`~graphrec.tasks.bots.train.BotTrainConfig`) is used with ``retrain``; default: defaults
    with ``seed``. ``anomalies=False`` skips anomaly scoring even when a model exists."""
    from graphrec import artifacts
    from graphrec.tasks.anomaly import model as anomaly_model
    from graphrec.tasks.bots.model import Explainer, check_compatible, load_model, score_snapshot, snapshot_labels, train_from_store
    from graphrec.tasks.bots.train import BotTrainConfig
    from graphrec.store import scores as score_store
    from graphrec.store.locks import JobLock, assert_owner
    from graphrec.store.schema import utcnow

    log = log or JobLog(JOB)
    run_date = run_date or dt.datetime.now(dt.timezone.utc).date()
    started_at = utcnow()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    lock = None if dry_run else JobLock(store, JOB).acquire()
    try:
        log.event("started", run_date=run_date.isoformat(), dry_run=dry_run, retrain=retrain, store=store.dialect)
        with_anomalies = anomalies and (retrain or artifacts.latest_version(store.settings.home, anomaly_model.KIND) is not None)
        with store.read() as conn:
            existing = score_store.run_for_date(conn, KIND, run_date)
            previous = score_store.latest_complete(conn, KIND)
            anomaly_existing = score_store.run_for_date(conn, anomaly_model.KIND, run_date) if with_anomalies else None
        done = existing is not None and existing.status == "complete"
        if with_anomalies:
            done = done and anomaly_existing is not None and anomaly_existing.status == "complete"
        if done and existing is not None and not replace and not dry_run:
            log.event("skipped", reason="a complete run for this date exists", run_id=existing.id)
            return ScoreBotsResult("skipped", run_date, existing.id, None, existing.n_scored, existing.n_flagged,
                                   threshold=existing.threshold, timings={"total": time.perf_counter() - t0})

        t = time.perf_counter()
        snap = store.snapshot()
        labels = snapshot_labels(snap)
        timings["store_read"] = time.perf_counter() - t
        log.event("snapshot", users=snap.num_nodes, friendships=snap.num_edges, labelled=int(labels.nodes.size), seconds=round(timings["store_read"], 2))

        t = time.perf_counter()
        if retrain:
            art = train_from_store(store, train_config or BotTrainConfig(seed=seed), snap=snap)
            timings["model_train"] = time.perf_counter() - t
            log.event("retrained", model_version=art.version, seconds=round(timings["model_train"], 2))
        if lock is not None:
            lock.heartbeat()
        model, art = load_model(store.settings.home)
        check_compatible(model, snap, art.version)
        t = time.perf_counter()
        prob, inputs = score_snapshot(model, snap, labels, chunk=chunk, threads=threads)
        flagged = prob >= model.threshold
        order = np.argsort(-prob, kind="stable")
        detail_nodes = order[: min(max_details, max(int(flagged.sum()), 100))]
        explain = Explainer(inputs, model, labels, snap)
        details = {int(i): {"score": round(float(prob[i]), 4), **explain(int(i))} for i in detail_nodes.tolist()}
        timings["model_score"] = time.perf_counter() - t
        log.event("scored", users=int(prob.size), flagged=int(flagged.sum()), threshold=model.threshold, seconds=round(timings["model_score"], 2))

        del explain, inputs  # the bot model's inputs are not needed any more: free them before anomaly scoring
        anomaly = None
        if with_anomalies:
            t = time.perf_counter()
            if retrain:
                anomaly_art = anomaly_model.train_from_store(store, seed=seed, threads=threads, snap=snap)
                timings["anomaly_train"] = time.perf_counter() - t
                log.event("retrained anomaly model", model_version=anomaly_art.version, seconds=round(timings["anomaly_train"], 2))
                t = time.perf_counter()
            if lock is not None:
                lock.heartbeat()
            detector, anomaly_art = anomaly_model.load_model(store.settings.home)
            anomaly_model.check_compatible(detector, snap, anomaly_art.version)
            anomaly = anomaly_model.score_snapshot(detector, snap, max_details=max_details, threads=threads)
            timings["anomaly_score"] = time.perf_counter() - t
            log.event("anomalies scored", users=int(anomaly.scores.size), flagged=int(anomaly.flagged.sum()), threshold=anomaly.threshold,
                      seconds=round(timings["anomaly_score"], 2))

        newly = gone = 0
        if previous is not None:
            with store.read() as conn:
                before = score_store.flagged_user_ids(conn, previous.id)
            now_flagged = snap.user_ids[flagged]
            newly = int(np.setdiff1d(now_flagged, before).size)
            gone = int(np.setdiff1d(before, now_flagged).size)
        result = ScoreBotsResult("dry-run" if dry_run else "complete", run_date, None, art.version, int(prob.size), int(flagged.sum()),
                                 newly, gone, model.threshold, timings)
        if anomaly is not None:
            result.anomalies = {"model_version": anomaly_art.version, "users_scored": int(anomaly.scores.size),
                                "flagged": int(anomaly.flagged.sum()), "threshold": anomaly.threshold}
        if dry_run:
            timings["total"] = time.perf_counter() - t0
            log.event("dry-run: nothing written", **{k: v for k, v in result.as_dict().items() if k != "seconds"})
            return result

        t = time.perf_counter()
        model_run_id = store.model_run_id(KIND, art.version)
        anomaly_run_id = store.model_run_id(anomaly_model.KIND, anomaly_art.version) if anomaly is not None else None
        summary = {"model_version": art.version, "newly_flagged": newly, "no_longer_flagged": gone, "data_revision": snap.revision,
                   "labelled": int(labels.nodes.size)}
        assert lock is not None
        lock.heartbeat()
        with store.write() as conn:
            assert_owner(conn, JOB, lock.owner)
            info = score_store.write_run(
                conn, kind=KIND, run_date=run_date, user_ids=snap.user_ids, scores=prob, flagged=flagged, details=details,
                threshold=model.threshold, model_run_id=model_run_id, summary=summary,
                started_at=started_at, replace=True, keep=keep_runs,
            )
            if anomaly is not None:
                anomaly_info = score_store.write_run(
                    conn, kind=anomaly_model.KIND, run_date=run_date, user_ids=snap.user_ids, scores=anomaly.scores,
                    flagged=anomaly.flagged, details=anomaly.details, threshold=anomaly.threshold,
                    model_run_id=anomaly_run_id,
                    summary={"model_version": anomaly_art.version, "data_revision": snap.revision},
                    started_at=started_at, replace=True, keep=keep_runs,
                )
                assert result.anomalies is not None
                result.anomalies["run_id"] = anomaly_info.id
        timings["store_write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        result.run_id = info.id
        log.event("complete", run_id=info.id, users=result.users_scored, flagged=result.flagged, newly_flagged=newly,
                  seconds={k: round(v, 2) for k, v in timings.items()})
        return result
    except BaseException as exc:
        log.event("failed", level="error", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if lock is not None:
            lock.release()
