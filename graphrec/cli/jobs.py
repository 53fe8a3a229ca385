"""Batch-job commands: the nightly scoring run."""

from __future__ import annotations

from typing import Any

import click

from graphrec.cli.app import FORMAT, cli, emit, open_store


# -- batch jobs and scores ----------------------------------------------------------------------
@cli.command("score-bots")
@click.option("--run-date", type=click.DateTime(formats=["%Y-%m-%d"]), help="Date of the run (default: today, UTC).")
@click.option("--retrain", is_flag=True, help="Retrain the bot model from the current labels first.")
@click.option("--dry-run", is_flag=True, help="Score and report, write nothing.")
@click.option("--replace", is_flag=True, help="Recompute a run date that already has a complete run.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for --retrain.")
@click.option("--chunk-size", default=200_000, show_default=True, type=click.IntRange(1000), help="Rows per inference chunk.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Torch threads for inference.")
@click.option("--keep-runs", default=7, show_default=True, type=click.IntRange(1), help="Complete runs kept per kind.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log lines on stderr.")
@click.option("--no-anomalies", is_flag=True, help="Skip anomaly scoring even when an anomaly model is trained.")
@FORMAT
@click.pass_context
def score_bots_cmd(ctx: click.Context, run_date: Any, retrain: bool, dry_run: bool, replace: bool, seed: int, chunk_size: int,
                   threads: int, keep_runs: int, log_format: str, no_anomalies: bool, fmt: str) -> None:
    """Nightly job: score every user with the bot model (and the anomaly model, when one is
    trained) and write the scoring runs in one transaction.

    Exit codes: 0 done (or the date was already done), 2 bad option, 4 not ready (no model, no
    labels, feature columns changed), 75 another run holds the lock (retry later)."""
    from graphrec.jobs.log import JobLog
    from graphrec.jobs.score_bots import JOB, score_bots

    result = score_bots(open_store(ctx), run_date=run_date.date() if run_date else None, retrain=retrain, dry_run=dry_run, replace=replace,
                        seed=seed, chunk=chunk_size, threads=threads, keep_runs=keep_runs, anomalies=not no_anomalies,
                        log=JobLog(JOB, log_format))
    emit(result.as_dict(), fmt)

