"""Batch-job commands: the nightly scoring job (``graphrec score``, alias ``graphrec score-bots``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import click

from graphrec.cli.app import FORMAT, cli, emit, engine_options, open_store, ray_options, threads_option


def _job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``score`` and ``score-bots`` share."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--run-date", type=click.DateTime(formats=["%Y-%m-%d"]), help="Date of the run (default: today, UTC)."),
        click.option("--retrain", is_flag=True, help="Retrain each scoring task's model from the current data first."),
        click.option("--dry-run", is_flag=True, help="Score and report, write nothing."),
        click.option("--replace", is_flag=True, help="Recompute a run date that already has a complete run."),
        click.option("--seed", default=0, show_default=True, type=int, help="Seed for --retrain."),
        click.option("--chunk-size", default=200_000, show_default=True, type=click.IntRange(1000), help="Rows per inference chunk."),
        threads_option("Torch threads for inference and --retrain"),
        click.option("--keep-runs", default=7, show_default=True, type=click.IntRange(1), help="Complete runs kept per kind."),
        click.option("--force", is_flag=True,
                     help="Write a run even when it flags far more users than the labels' bot rate (more than max(3 x rate, rate + 5 "
                          "points)); the run records that it was forced. Without it such a run is refused and nothing is written."),
        click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
                     help="Job events on stderr as text or JSON lines [default: the root --log-format, else text]."),
        click.option("--no-anomalies", is_flag=True, help="Skip anomaly scoring even when an anomaly model is trained."),
        click.option("--task", "tasks", multiple=True, metavar="NAME",
                     help="Run only this scoring task (repeatable; default: every scoring task with a trained model)."),
        engine_options,
        click.option("--partitions", type=click.IntRange(1), help="With --engine ray: partitions of the graph [default: one per 250k users, at least --workers]."),
        FORMAT,
        click.pass_context,
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run(ctx: click.Context, job: str, run_date: dt.datetime | None, retrain: bool, dry_run: bool, replace: bool, seed: int,
         chunk_size: int, threads: int, keep_runs: int, force: bool, log_format: str | None, no_anomalies: bool,
         tasks: tuple[str, ...], engine: str, ray_address: str | None, workers: int | None, partitions: int | None) -> Any:
    from graphrec.errors import InputError
    from graphrec.jobs.log import JobLog
    from graphrec.jobs.nightly import run_nightly
    from graphrec.logs import current_log_format

    if partitions is not None and engine != "ray":
        raise InputError("--partitions goes with --engine ray")
    return run_nightly(open_store(ctx), run_date=run_date.date() if run_date else None, retrain=retrain, dry_run=dry_run,
                       replace=replace, seed=seed, chunk=chunk_size, threads=threads, keep_runs=keep_runs, tasks=tasks or None,
                       exclude=("anomaly",) if no_anomalies else (), log=JobLog(job, log_format or current_log_format()), force=force,
                       engine_name=engine, ray_options=ray_options(engine, ray_address, workers), partitions=partitions)


@cli.command("score")
@_job_options
def score_cmd(ctx: click.Context, fmt: str, **options: Any) -> None:
    """Nightly job: score every user with every scoring task that has a trained model (bots,
    anomalies) and write all the scoring runs in one transaction.

    A run that flags far more users than the labels' bot rate (more than max(3 x rate, rate + 5
    points)) is refused and nothing is written, unless --force.

    Exit codes: 0 done (or the date was already done), 2 bad option, 4 not ready (no scoring task
    has a model, no labels to retrain on, feature columns changed, a run refused by the sanity
    check), 75 another run holds the lock (retry later)."""
    from graphrec.jobs.nightly import JOB

    def table(d: dict[str, Any]) -> str:
        lines = [f"{d['status']} run of {d['run_date']}",
                 f"{'task':10s} {'status':8s} {'run':>5s} {'model':24s} {'users':>9s} {'flagged':>8s} {'new':>6s} {'gone':>6s} {'threshold':>9s}"]
        for name, r in d["tasks"].items():
            thr = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
            lines.append(f"{name:10s} {r['status']:8s} {r['run_id'] if r['run_id'] is not None else '-':>5} {r['model_version'] or '-':24s} "
                         f"{r['users_scored']:9d} {r['flagged']:8d} {r['newly_flagged']:6d} {r['no_longer_flagged']:6d} {thr:>9s}")
        for name, r in d["tasks"].items():
            check = r.get("flag_check")
            if check and not check["passed"]:
                lines.append(f"warning: {name} flagged {check['flagged']} / {check['scored']} = {100 * check['flagged_share']:.1f}% of the users, "
                             f"labelled {check['positive_label']} rate {100 * check['labelled_rate']:.1f}% (limit {100 * check['limit']:.1f}%)"
                             + (": written with --force" if r["forced"] else ""))
        lines.append("seconds: " + ", ".join(f"{k}={v}" for k, v in d["seconds"].items()))
        return "\n".join(lines)

    emit(_run(ctx, JOB, **options).as_dict(), fmt, table)


@cli.command("score-bots")
@_job_options
def score_bots_cmd(ctx: click.Context, fmt: str, **options: Any) -> None:
    """The nightly job under its first name (kept for existing crontabs): the same run as
    'graphrec score', with the summary it has always printed (the bot run's figures, the
    anomaly run's under 'anomalies').

    Exit codes: 0 done (or the date was already done), 2 bad option, 4 not ready (no scoring task
    has a model, no labels to retrain on, feature columns changed, a run refused by the sanity
    check), 75 another run holds the lock (retry later)."""
    from graphrec.jobs.nightly import LEGACY_JOB

    emit(_run(ctx, LEGACY_JOB, **options).as_score_bots_dict(), fmt)
