"""The nightly scoring job (``graphrec score``, alias ``graphrec score-bots``), built for cron or
Airflow: every registered scoring task (:func:`graphrec.tasks.registry.scoring_task_names`: bots,
anomaly) that has a served model scores every user, and all the runs are written together.

Steps: take the job lock (:mod:`graphrec.store.locks`); find the scoring tasks with a served model
(with ``retrain``: every selected scoring task); skip the tasks whose run for the run date is
complete (idempotent; ``replace`` recomputes them; nothing left: the job is ``skipped``); read one
consistent snapshot; with ``retrain`` train and register each task's model on that snapshot
(:func:`graphrec.tasks.base.train_and_register`); load each served model and check it fits the
store's feature columns; score every user with each model (:meth:`ScoringModel.score_graph
<graphrec.tasks.base.ScoringModel.score_graph>`); write every run and every score in one
transaction that first checks the lock is still held (:meth:`GraphStore.write_scoring_runs
<graphrec.store.store.GraphStore.write_scoring_runs>`); release the lock.

Log events (:class:`~graphrec.jobs.log.JobLog`, one JSON line each with ``--log-format json``):
``started``, ``skipped``, ``snapshot``, per task ``retrained`` / ``scored`` (the anomaly task's
under their old names, ``retrained anomaly model`` / ``anomalies scored``: :data:`EVENT_NAMES`),
``dry-run: nothing written``, ``complete`` and ``failed``. ``complete`` carries ``run_id``,
``users``, ``flagged`` and ``newly_flagged`` of the first run in the job's order (the bot run
whenever bots ran), as the ``score-bots`` job always logged them, ``runs`` (those four figures
per task) and ``seconds``.

Sanity guard (:func:`check_flag_rate`): a scoring model trained from labels (one that has a
``positive_label``, the bot model) must not flag far more users than the labels say exist. A run
whose flagged share exceeds ``max(3 x the labelled rate, the labelled rate + 5 points)`` (the
labelled rate: the share of labelled real users that carry the positive label) is refused before
anything is written (:class:`FlagRateError`, exit code 4, with the figures); ``force`` writes it
anyway and the run's summary records ``forced: true`` with the figures. The factor 3 lets a run find
several times more bots than were labelled (labels are a sample, often of the obvious ones); the 5
points keep a store with very few labelled bots from refusing every run. A model that flags 79% of
the users when 15% of the labels are bots (labels drawn at random, a model that learnt nothing) is
stopped; dry runs report the check without raising.

Crash safety: nothing is written before the final transaction, and that transaction holds every
run, so a job killed at any moment leaves the previous complete runs in place; readers see them
until the new runs commit. A killed job's lock row is taken over by the next run (dead pid on the
same host, or expiry).

Exit codes (CLI): 0 done or already done; 2 bad option; 4 store or model not ready (no scoring
task has a model, no labels to retrain on, feature columns changed); 75 another run holds the
lock (retry later); 1 unexpected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.errors import StoreStateError
from graphrec.jobs.log import JobLog

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.distributed.engine import RayOptions
    from graphrec.jobs.engines import EngineScores, ScoringEngine
    from graphrec.store import RunInfo
    from graphrec.store.store import GraphStore
    from graphrec.tasks.base import Registered, ScoreRun, ScoringModel, TaskConfig

#: Job name in the JSON-lines log of ``graphrec score``.
JOB = "score"
#: Job name in the log of the ``graphrec score-bots`` alias (what existing log queries filter on).
LEGACY_JOB = "score-bots"
#: The ``job_locks`` row both commands take: the one existing deployments already know, so an
#: old crontab line and a new one never run at once.
LOCK = "score-bots"
#: Event names a scoring task's steps are logged under when they differ from the generic
#: ``retrained`` / ``scored`` (keyed by kind): the anomaly model's steps keep the names the
#: ``score-bots`` job always gave them, so existing log queries that read ``scored`` as the bot
#: run's and ``anomalies scored`` as the anomaly run's keep working. Every such event also
#: carries ``task``.
EVENT_NAMES: dict[str, dict[str, str]] = {"anomaly": {"retrained": "retrained anomaly model", "scored": "anomalies scored"}}


#: The sanity guard's rule: a run may flag at most ``max(FLAG_RATE_FACTOR x rate, rate + FLAG_RATE_MARGIN)``
#: of the users, ``rate`` being the labelled positive rate (see the module docs).
FLAG_RATE_FACTOR = 3.0
FLAG_RATE_MARGIN = 0.05


class FlagRateError(StoreStateError):
    """A scoring run flagged far more users than the labels' positive rate: nothing was written
    (rerun with ``force`` to write it anyway). Exit code 4: the model is not fit to serve."""


@dataclass(frozen=True)
class FlagRateCheck:
    """The sanity guard's figures for one run: ``flagged`` of ``scored`` users, ``positives`` of
    ``labelled`` real users carry ``positive_label``, and the largest flagged share allowed."""

    positive_label: str
    flagged: int
    scored: int
    positives: int
    labelled: int

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.scored if self.scored else 0.0

    @property
    def labelled_rate(self) -> float:
        return self.positives / self.labelled if self.labelled else 0.0

    @property
    def limit(self) -> float:
        return max(FLAG_RATE_FACTOR * self.labelled_rate, self.labelled_rate + FLAG_RATE_MARGIN)

    @property
    def passed(self) -> bool:
        return self.flagged_share <= self.limit

    def describe(self) -> str:
        """``flagged n / N = x%, labelled <label> rate y% (p / m labelled users), limit z%``."""
        return (f"flagged {self.flagged} / {self.scored} = {100 * self.flagged_share:.1f}%, labelled {self.positive_label} rate "
                f"{100 * self.labelled_rate:.1f}% ({self.positives} / {self.labelled} labelled users), limit "
                f"max({FLAG_RATE_FACTOR:g} x rate, rate + {100 * FLAG_RATE_MARGIN:g} points) = {100 * self.limit:.1f}%")

    def as_dict(self) -> dict[str, Any]:
        return {"flagged": self.flagged, "scored": self.scored, "flagged_share": round(self.flagged_share, 4),
                "positive_label": self.positive_label, "labelled": self.labelled, "labelled_positives": self.positives,
                "labelled_rate": round(self.labelled_rate, 4), "limit": round(self.limit, 4), "passed": self.passed}


def check_flag_rate(model: "ScoringModel", labels: np.ndarray, is_synthetic: np.ndarray, flagged: np.ndarray) -> FlagRateCheck | None:
    """The sanity guard's figures for ``model``'s run (``flagged``: bool per user, aligned with a
    snapshot's ``labels`` and ``is_synthetic``), or None when the model is not trained from labels
    (no ``positive_label``) or no user it learned from is labelled (there is no rate to compare
    with). The rate is that of the labels the model learned from: real users' labels, and
    synthetic users' too when it was trained with ``include_synthetic`` (as for the demo bots of
    ``graphrec import ego-facebook --with-demo-bots``, which are all synthetic)."""
    positive = getattr(model, "positive_label", None)
    if not isinstance(positive, str):
        return None
    with_synthetic = bool(getattr(getattr(model, "config", None), "include_synthetic", False))
    real_labels = [lab for lab, syn in zip(labels.tolist(), np.asarray(is_synthetic, dtype=bool).tolist())
                   if lab is not None and (with_synthetic or not syn)]
    if not real_labels:
        return None
    return FlagRateCheck(positive, int(np.count_nonzero(flagged)), int(flagged.size), sum(lab == positive for lab in real_labels), len(real_labels))


def event_name(kind: str, step: str) -> str:
    """The log event of ``step`` (``retrained`` or ``scored``) for a task of ``kind``."""
    return EVENT_NAMES.get(kind, {}).get(step, step)


@dataclass
class TaskRun:
    """One scoring task's part of a nightly run.

    ``status``: ``complete`` (written), ``dry-run`` (scored, not written) or ``skipped`` (the run
    date's complete run was kept; its figures are reported). ``newly_flagged`` /
    ``no_longer_flagged`` compare the flagged users with the task's previous complete run."""

    task: str
    kind: str
    status: str
    run_id: int | None = None
    model_version: str | None = None
    users_scored: int = 0
    flagged: int = 0
    newly_flagged: int = 0
    no_longer_flagged: int = 0
    threshold: float | None = None
    retrained: bool = False
    #: the sanity guard's figures (None: the task's model is not trained from labels)
    flag_check: FlagRateCheck | None = None
    #: written although the sanity guard refused it (``force``)
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "kind": self.kind,
            "run_id": self.run_id,
            "model_version": self.model_version,
            "users_scored": self.users_scored,
            "flagged": self.flagged,
            "newly_flagged": self.newly_flagged,
            "no_longer_flagged": self.no_longer_flagged,
            "threshold": self.threshold,
            "retrained": self.retrained,
            "flag_check": self.flag_check.as_dict() if self.flag_check is not None else None,
            "forced": self.forced,
        }

    @classmethod
    def kept(cls, task: str, info: "RunInfo") -> "TaskRun":
        """The report of a complete run the job left as it was."""
        summary = info.summary or {}
        return cls(task, info.kind, "skipped", info.id, summary.get("model_version"), info.n_scored, info.n_flagged,
                   int(summary.get("newly_flagged") or 0), int(summary.get("no_longer_flagged") or 0), info.threshold,
                   forced=bool(summary.get("forced")))


@dataclass
class NightlyResult:
    """What the job did: ``status`` (``complete``, ``skipped``: every selected run was already
    complete, ``dry-run``), one :class:`TaskRun` per scoring task that has a model (by task name,
    in the job's order) and the seconds each step took."""

    status: str
    run_date: dt.date
    runs: dict[str, TaskRun] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    #: peak memory (MiB) of the job's processes after each step (read, score, write): the driver's,
    #: and on the ray engine each partition worker's
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_of_kind(self, kind: str) -> TaskRun | None:
        return next((r for r in self.runs.values() if r.kind == kind), None)

    def as_dict(self) -> dict[str, Any]:
        """The summary ``graphrec score`` prints."""
        return {
            "status": self.status,
            "run_date": self.run_date.isoformat(),
            "tasks": {name: run.as_dict() for name, run in self.runs.items()},
            "seconds": {k: round(v, 2) for k, v in self.timings.items()},
            "peak_memory_mib": self.resources,
        }

    def as_score_bots_dict(self) -> dict[str, Any]:
        """The summary ``graphrec score-bots`` has always printed: the bot run's figures at the
        top level (zeros and nulls when no bot model ran), the anomaly run's under
        ``anomalies`` (null when none ran), and the timings with the bot model's steps named
        ``model_train`` / ``model_score``."""
        bot = self.run_of_kind("bot") or TaskRun("bots", "bot", self.status)
        anomaly = self.run_of_kind("anomaly")
        anomalies = None
        if anomaly is not None:
            anomalies = {"model_version": anomaly.model_version, "users_scored": anomaly.users_scored, "flagged": anomaly.flagged,
                         "threshold": anomaly.threshold}
            if anomaly.run_id is not None:
                anomalies["run_id"] = anomaly.run_id
        legacy_names = {"bot_train": "model_train", "bot_score": "model_score"}
        return {
            "status": self.status,
            "run_date": self.run_date.isoformat(),
            "run_id": bot.run_id,
            "model_version": bot.model_version,
            "users_scored": bot.users_scored,
            "flagged": bot.flagged,
            "newly_flagged": bot.newly_flagged,
            "no_longer_flagged": bot.no_longer_flagged,
            "threshold": bot.threshold,
            "anomalies": anomalies,
            "seconds": {legacy_names.get(k, k): round(v, 2) for k, v in self.timings.items()},
        }


def select_tasks(tasks: Sequence[str] | None = None, *, exclude: Sequence[str] = ()) -> list[str]:
    """The scoring tasks a run covers, in the job's order: ``tasks`` (default: every registered
    scoring task) less ``exclude``; :class:`~graphrec.errors.InputError` for a name that is not a
    scoring task, or when nothing is left."""
    from graphrec.errors import InputError
    from graphrec.tasks.registry import scoring_task_names

    known = scoring_task_names()
    wanted = list(known) if tasks is None else list(dict.fromkeys(tasks))
    bad = [t for t in [*wanted, *exclude] if t not in known]
    if bad:
        raise InputError(f"unknown scoring task {bad[0]!r}: choose from {', '.join(known)}")
    chosen = [t for t in known if t in wanted and t not in exclude]
    if not chosen:
        raise InputError("no scoring task left to run (every selected task is excluded)")
    return chosen


def retrain_config(config_type: "type[TaskConfig]", *, seed: int, threads: int | None) -> "TaskConfig":
    """The config a task is retrained with when the caller gives none: the defaults with
    ``seed``; the job's ``threads`` fill a ``threads`` field the task leaves unset (None)."""
    config = config_type(seed=seed)
    if threads is not None and getattr(config, "threads", 0) is None:
        config = dataclasses.replace(config, threads=threads)  # type: ignore[call-arg]
    return config


def run_nightly(
    store: "GraphStore",
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
    tasks: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    configs: "Mapping[str, TaskConfig] | None" = None,
    log: JobLog | None = None,
    force: bool = False,
    engine_name: str = "local",
    ray_options: "RayOptions | None" = None,
    partitions: int | None = None,
    work_dir: str | None = None,
) -> NightlyResult:
    """Run the nightly job once (see the module docs).

    ``tasks``: the scoring tasks to run (default: every registered one; each runs only if it has
    a served model, or with ``retrain``), less those in ``exclude`` (:func:`select_tasks`).
    ``configs``: per-task training configs for ``retrain`` (default: :func:`retrain_config` with
    ``seed`` and ``threads``). ``chunk``: rows per
    inference chunk; ``threads``: torch threads for scoring; ``keep_runs``: complete runs kept
    per kind; ``max_details``: most users explained per run. ``dry_run`` scores and reports but
    writes nothing (and takes no lock). ``force`` writes runs the sanity guard refuses
    (:func:`check_flag_rate`; without it such a run is a :class:`FlagRateError` and nothing is
    written); the run's summary then records ``forced``."""
    from graphrec import artifacts
    from graphrec.jobs.engines import RunToWrite, open_engine
    from graphrec.store.locks import JobLease
    from graphrec.store.schema import utcnow
    from graphrec.tasks.registry import get_task

    log = log or JobLog(JOB)
    names = select_tasks(tasks, exclude=exclude)
    run_date = run_date or dt.datetime.now(dt.UTC).date()
    started_at = utcnow()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    lease = None if dry_run else JobLease(store, LOCK).acquire()
    engine: ScoringEngine | None = None
    try:
        log.event("started", run_date=run_date.isoformat(), dry_run=dry_run, retrain=retrain, store=store.dialect, tasks=names)
        home = store.settings.home
        task_of = {name: get_task(name) for name in names}
        available = [name for name in names if retrain or artifacts.latest_version(home, task_of[name].kind) is not None]
        if not available:
            hints = " or ".join(f"`graphrec train {name}`" for name in names)
            raise StoreStateError(f"no trained scoring model ({', '.join(names)}): train one with {hints} first")
        existing = {name: store.run_for_date(task_of[name].kind, run_date) for name in available}
        previous = {name: store.latest_run(task_of[name].kind) for name in available}
        done = {name: info for name, info in existing.items() if info is not None and info.status == "complete"}
        todo = [name for name in available if replace or dry_run or name not in done]
        if not todo:
            kept = {name: TaskRun.kept(name, done[name]) for name in available}
            log.event("skipped", reason="a complete run for this date exists", run_id=next(iter(kept.values())).run_id,
                      runs={name: run.run_id for name, run in kept.items()})
            timings["total"] = time.perf_counter() - t0
            return NightlyResult("skipped", run_date, kept, timings)

        engine = open_engine(store, engine_name, ray_options=ray_options, partitions=partitions, work_dir=work_dir)
        if lease is not None:
            engine.discard_stale(store)
        unsupported = [name for name in todo if not engine.supports(task_of[name].kind)]
        for name in unsupported:
            log.event("not distributed", level="warning", task=name, engine=engine_name,
                      reason=f"the {engine_name} engine does not score {name} yet; run it with --engine local")
        todo = [name for name in todo if name not in unsupported]
        available = [name for name in available if name not in unsupported]
        if not todo:
            raise StoreStateError(f"no scoring task left for the {engine_name} engine (not distributed: {', '.join(unsupported)})")
        t = time.perf_counter()
        read = engine.read(store)
        timings["store_read"] = time.perf_counter() - t
        resources = {"read": engine.resources()}
        log.event("snapshot", users=read.users, friendships=read.friendships, labelled=read.labelled, seconds=round(timings["store_read"], 2))

        models: dict[str, ScoringModel] = {}
        if not retrain:  # every model loaded and checked before any scoring starts
            for name in todo:
                models[name] = task_of[name].load(home)
                models[name].check_compatible(read.feature_names, retrain_hint=f"graphrec train {name}` or `graphrec score --retrain")

        results: dict[str, EngineScores] = {}
        runs: dict[str, TaskRun] = {}
        retrained: dict[str, Registered[Any]] = {}
        for name in todo:
            task = task_of[name]
            run = TaskRun(name, task.kind, "dry-run" if dry_run else "complete", retrained=retrain)
            if retrain:
                t = time.perf_counter()
                config = (configs or {}).get(name) or retrain_config(task.config_type, seed=seed, threads=threads)
                # served only once the sanity guard passed: a refused retrain leaves the previous model serving
                registered = engine.retrain(store, task, config)
                retrained[name] = registered
                timings[f"{task.kind}_train"] = time.perf_counter() - t
                log.event(event_name(task.kind, "retrained"), task=name, model_version=registered.version, seconds=round(timings[f"{task.kind}_train"], 2))
                models[name] = registered.model
            if lease is not None:
                lease.heartbeat()
            t = time.perf_counter()
            model = models.pop(name)  # dropped once scored: one model's inference state in memory at a time
            run.model_version = model.version
            scored = engine.score(name, model, threads=threads, max_details=max_details, chunk=chunk)
            del model
            timings[f"{task.kind}_score"] = time.perf_counter() - t
            results[name] = scored
            run.users_scored, run.flagged, run.threshold = scored.users, scored.flagged, scored.threshold
            run.flag_check = scored.flag_check
            log.event(event_name(task.kind, "scored"), task=name, users=run.users_scored, flagged=run.flagged, threshold=run.threshold,
                      seconds=round(timings[f"{task.kind}_score"], 2))
            runs[name] = run
        resources["score"] = engine.resources()

        if previous:
            before = {name: store.flagged_user_ids(info.id) for name, info in previous.items() if info is not None and name in runs}
            for name, flagged_before in before.items():
                now_flagged = results[name].flagged_user_ids
                runs[name].newly_flagged = int(np.setdiff1d(now_flagged, flagged_before).size)
                runs[name].no_longer_flagged = int(np.setdiff1d(flagged_before, now_flagged).size)
        for name in available:
            if name not in runs:
                runs[name] = TaskRun.kept(name, done[name])
        for name in todo:  # the sanity guard: before anything is written
            check = runs[name].flag_check
            if check is None or check.passed:
                continue
            if dry_run:
                log.event("sanity check failed", level="warning", task=name, **check.as_dict())
            elif force:
                runs[name].forced = True
                log.event("sanity check overridden (--force)", level="warning", task=name, **check.as_dict())
            else:
                unserved = " (the retrained model was saved, not served)" if name in retrained else ""
                raise FlagRateError(f"{name} run refused, nothing written{unserved}: {check.describe()}. Check the labels and retrain "
                                    f"(`graphrec train {name}`), or write the run anyway with --force")
        for registered in retrained.values():
            registered.serve(home)
        result = NightlyResult("dry-run" if dry_run else "complete", run_date, {n: runs[n] for n in available}, timings, resources)
        if dry_run:
            timings["total"] = time.perf_counter() - t0
            log.event("dry-run: nothing written", **{k: v for k, v in result.as_dict().items() if k != "seconds"})
            return result

        t = time.perf_counter()
        model_run_ids = {name: store.model_run_id(runs[name].kind, str(runs[name].model_version)) for name in todo}
        assert lease is not None
        lease.heartbeat()
        writes = []
        for name in todo:
            scored, run = results[name], runs[name]
            summary = {"model_version": run.model_version, "newly_flagged": run.newly_flagged, "no_longer_flagged": run.no_longer_flagged,
                       "data_revision": read.revision, **scored.summary}
            if run.flag_check is not None:
                summary["flag_check"] = run.flag_check.as_dict()
            if run.forced:
                summary["forced"] = True
            writes.append(RunToWrite(name, run.kind, summary, model_run_ids[name]))
        # every run in one transaction that first checks this job still holds the lock
        written = engine.write(store, writes, run_date=run_date, started_at=started_at, lock=(LOCK, lease.owner), keep=keep_runs)
        resources["write"] = engine.resources()
        for name, info in zip(todo, written):
            runs[name].run_id = info.id
        timings["store_write"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t0
        # top level as the score-bots job always logged it: the first run in the job's order (the bot
        # run whenever bots ran); every run under ``runs``
        head = runs[todo[0]]
        log.event("complete", run_id=head.run_id, users=head.users_scored, flagged=head.flagged, newly_flagged=head.newly_flagged,
                  runs={name: {"run_id": runs[name].run_id, "users": runs[name].users_scored, "flagged": runs[name].flagged,
                               "newly_flagged": runs[name].newly_flagged} for name in todo},
                  seconds={k: round(v, 2) for k, v in timings.items()})
        return result
    except BaseException as exc:
        log.event("failed", level="error", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if engine is not None:
            engine.close()
        if lease is not None:
            lease.release()
