"""Serving commands: recommendations, similar users, the FAISS index, and reads of the nightly scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphrec.cli.app import FORMAT, cli, emit, open_store, threads_option


@cli.command("similar")
@click.option("--user", "user_id", required=True, help="External id of the user.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1))
@click.option("--model-version", help="Siamese model version (default: the latest trained).")
@FORMAT
@click.pass_context
def similar(ctx: click.Context, user_id: str, k: int, model_version: str | None, fmt: str) -> None:
    """Users with the most similar learned profile embedding (works for users with no friends)."""
    from graphrec.serving.similar import find_similar

    data = find_similar(open_store(ctx), user_id, k, version=model_version)
    emit(data, fmt, lambda d: "\n".join(f"{it['user']:>12s}  {it['similarity']:.4f}" for it in d["similar"]) or "(none)")


@cli.group("index")
def index_group() -> None:
    """The Siamese model's FAISS index."""


@index_group.command("sync")
@FORMAT
@click.pass_context
def index_sync(ctx: click.Context, fmt: str) -> None:
    """Incremental update: embed users created or changed since the last sync, drop deleted ones."""
    from graphrec.serving.similar import sync_index

    emit(sync_index(open_store(ctx)), fmt)


@cli.command("bots")
@click.option("--top", "top", default=20, show_default=True, type=click.IntRange(1), help="How many users to list.")
@FORMAT
@click.pass_context
def bots_cmd(ctx: click.Context, top: int, fmt: str) -> None:
    """The most likely bots of the latest complete scoring run, with the signals behind each."""
    from graphrec.serving.scores import top_bots

    data = top_bots(open_store(ctx), top=top).as_dict()

    def table(d: dict[str, Any]) -> str:
        lines = [f"run {d['run_id']} of {d['run_date']}, threshold {d['threshold']:.3f}",
                 f"{'user':>12s} {'score':>7s} {'flag':>4s}  signals"]
        for it in d["bots"]:
            sig = ", ".join(f"{k}={v}" for k, v in it["signals"].items() if k != "score")
            lines.append(f"{it['user']:>12s} {it['score']:7.4f} {'yes' if it['flagged'] else 'no':>4s}  {sig}")
        return "\n".join(lines)

    emit(data, fmt, table)


@cli.command("anomalies")
@click.option("--top", "top", default=20, show_default=True, type=click.IntRange(1), help="How many users to list.")
@click.option("--live", is_flag=True, help="Score the current graph with the served model instead of reading the latest nightly run.")
@threads_option("Torch threads for live scoring (with --live)")
@FORMAT
@click.pass_context
def anomalies_cmd(ctx: click.Context, top: int, live: bool, threads: int, fmt: str) -> None:
    """The most anomalous users, each with why: the view that drives the score (attributes or
    structure) and the profile features that fit worst (observed vs expected).

    Reads the latest complete anomaly run of the nightly job; with --live, or when no run exists
    yet, scores the current graph with the served model (nothing is written)."""
    from graphrec.serving.scores import top_anomalies

    data = top_anomalies(open_store(ctx), top=top, live=live, threads=threads).as_dict()

    def table(d: dict[str, Any]) -> str:
        lines = [f"{d['source']}, threshold {d['threshold']:.4f}", f"{'user':>12s} {'score':>7s} {'flag':>4s} {'driver':>10s}  why"]
        for it in d["anomalies"]:
            feats = ", ".join(f"{f['feature']}={f['value']:g} (expected {f['expected']:.2f})" for f in it.get("features", [])[:3])
            why = feats if it.get("driver") == "attributes" else (
                f"friends outside own communities {it.get('friends_outside_own_communities', {})}, {it.get('friends')} friends")
            lines.append(f"{it['user']:>12s} {it['score']:7.4f} {'yes' if it['flagged'] else 'no':>4s} {it.get('driver', ''):>10s}  {why}")
        return "\n".join(lines)

    emit(data, fmt, table)


@cli.group()
def scores() -> None:
    """Scores written by the nightly jobs."""


@scores.command("export")
@click.option("--kind", default="bot", show_default=True, help="Scoring run kind (bot, anomaly).")
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="CSV file to write (id,score,is_synthetic).")
@FORMAT
@click.pass_context
def scores_export(ctx: click.Context, kind: str, output: Path, fmt: str) -> None:
    """Write ``id,score,is_synthetic`` for every user of the latest complete run of KIND (atomically)."""
    from graphrec.serving.scores import export_scores

    emit(export_scores(open_store(ctx), kind, output).as_dict(), fmt)


@cli.command()
@click.option("--user", "user_id", help="External id of the user to recommend friends to.")
@click.option("--users-file", type=click.Path(path_type=Path), help="Batch mode: one external id per line.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Batch mode: JSON-lines output file.")
@click.option("-k", "k", default=20, show_default=True, type=click.IntRange(1), help="Number of suggestions.")
@click.option("--bot-threshold", type=click.FloatRange(0.0, 1.0), help="Drop accounts whose score in the latest bot-scoring run is above this [default: those the run flagged, at its model's threshold].")
@click.option("--no-bot-filter", is_flag=True, help="Keep accounts regardless of bot scores.")
@click.option("--model-version", help="Model version (default: the latest trained).")
@FORMAT
@click.pass_context
def recommend(
    ctx: click.Context,
    user_id: str | None,
    users_file: Path | None,
    output: Path | None,
    k: int,
    bot_threshold: float | None,
    no_bot_filter: bool,
    model_version: str | None,
    fmt: str,
) -> None:
    """Friend suggestions with scores and reasons (one user, or a batch to JSON lines)."""
    from graphrec.errors import InputError

    if (user_id is None) == (users_file is None):
        raise InputError("give exactly one of --user ID or --users-file FILE")
    if user_id is not None and output is not None:
        raise InputError("--output goes with --users-file (use --format json for one user)")
    if users_file is not None and output is None:
        raise InputError("--users-file needs --output FILE")

    from graphrec.serving.recommend import recommend_batch, recommend_user

    threshold = None if no_bot_filter else ("flagged" if bot_threshold is None else bot_threshold)
    if users_file is not None:
        assert output is not None
        report = recommend_batch(open_store(ctx), users_file, output, k=k, bot_threshold=threshold, version=model_version)
        emit(report.as_dict(), fmt)
        report.check()
        return
    assert user_id is not None
    result = recommend_user(open_store(ctx), user_id, k=k, bot_threshold=threshold, version=model_version)

    def table(d: dict[str, Any]) -> str:
        lines = [f"friend suggestions for {d['user']} (model {result.model})"]
        for i, s in enumerate(d["recommendations"], 1):
            lines.append(f"{i:3d}. {s['user']:>10s}  score {s['score']:7.3f}  {'; '.join(s['reasons'])}")
        return "\n".join(lines if d["recommendations"] else lines + ["  (no suggestions)"])

    emit(result.as_dict(), fmt, table)

