"""Serving commands: recommendations, similar users, the FAISS index, and reads of the nightly scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphrec.cli.app import FORMAT, cli, emit, engine_options, open_store, ray_options, threads_option


def show(value: Any) -> str:
    """A value as a table cell: floats to 4 significant digits, lists joined by commas, dicts as
    ``k=v``, None as ``-``: never a Python repr."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(show(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={show(v)}" for k, v in value.items()) or "-"
    return str(value)


def freshness_lines(d: dict[str, Any]) -> list[str]:
    """The table footer: one line per served model or run, its store revision against the store's."""
    return [f["message"] for f in d.get("freshness", [])]


def freshness_note(d: dict[str, Any]) -> str:
    """The same as :func:`freshness_lines`, appended to a table's first line (``; ...``), for
    tables whose rows start on a fixed line."""
    return "".join(f"; {m}" for m in freshness_lines(d))


def user_argument(positional: str | None, option: str | None, *, required: bool = True) -> str | None:
    """The user given as ``USER`` or ``--user USER`` (both allowed when they agree)."""
    from graphrec.errors import InputError

    if positional is not None and option is not None and positional.strip() != option.strip():
        raise InputError(f"two different users given: USER {positional!r} and --user {option!r}: give one")
    user = positional if positional is not None else option
    if user is None and required:
        raise InputError("give the user: USER or --user USER")
    return user


@cli.command("similar")
@click.argument("user", required=False)
@click.option("--user", "user_id", help="External id of the user (the same as the USER argument).")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1), help="Number of similar users to list.")
@click.option("--model-version", help="Siamese model version (default: the latest trained).")
@FORMAT
@click.pass_context
def similar(ctx: click.Context, user: str | None, user_id: str | None, k: int, model_version: str | None, fmt: str) -> None:
    """Users with the most similar learned profile embedding to USER (works for users with no
    friends). Says when the Siamese model is older than the store."""
    from graphrec.serving.similar import find_similar

    chosen = user_argument(user, user_id)
    assert chosen is not None
    data = find_similar(open_store(ctx), chosen, k, version=model_version)

    def table(d: dict[str, Any]) -> str:
        lines = [f"users similar to {d['user']} (siamese model {d['model']})", f"{'user':>12s}  similarity"]
        lines += [f"{it['user']:>12s}  {show(it['similarity']):>10s}" for it in d["similar"]] or ["  (none)"]
        return "\n".join(lines + freshness_lines(d))

    emit(data, fmt, table)


@cli.group("index")
def index_group() -> None:
    """The Siamese model's FAISS index."""


@index_group.command("sync")
@engine_options
@FORMAT
@click.pass_context
def index_sync(ctx: click.Context, engine: str, ray_address: str | None, workers: int | None, fmt: str) -> None:
    """Incremental update: embed users created or changed since the last sync, drop deleted ones.
    With --engine ray the embeddings are computed by Ray workers (the same index)."""
    from graphrec.serving.similar import sync_index

    options = ray_options(engine, ray_address, workers)
    emit(sync_index(open_store(ctx), engine=engine, ray=options), fmt)


@cli.command("bots")
@click.option("--top", "top", default=20, show_default=True, type=click.IntRange(1), help="How many users to list.")
@FORMAT
@click.pass_context
def bots_cmd(ctx: click.Context, top: int, fmt: str) -> None:
    """The most likely bots of the latest complete scoring run, with the signals behind each."""
    from graphrec.serving.scores import top_bots

    data = top_bots(open_store(ctx), top=top).as_dict()

    def table(d: dict[str, Any]) -> str:
        lines = [f"run {d['run_id']} of {d['run_date']}, threshold {show(d['threshold'])}{freshness_note(d)}",
                 f"{'user':>12s} {'score':>7s} {'flag':>4s}  signals"]
        for it in d["bots"]:
            sig = show({k: v for k, v in it["signals"].items() if k != "score"})
            lines.append(f"{it['user']:>12s} {show(it['score']):>7s} {show(it['flagged']):>4s}  {sig}")
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
        lines = [f"{d['source']}, threshold {show(d['threshold'])}{freshness_note(d)}", f"{'user':>12s} {'score':>7s} {'flag':>4s} {'driver':>10s}  why"]
        for it in d["anomalies"]:
            feats = ", ".join(f"{f['feature']}={show(f['value'])} (expected {f['expected']:.2f})" for f in it.get("features", [])[:3])
            why = feats if it.get("driver") == "attributes" else (
                f"friends outside own communities {show(it.get('friends_outside_own_communities'))}, {show(it.get('friends'))} friends")
            lines.append(f"{it['user']:>12s} {show(it['score']):>7s} {show(it['flagged']):>4s} {show(it.get('driver')):>10s}  {why}")
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
    """Write id,score,is_synthetic for every user of the latest complete scoring run of --kind to
    a CSV file (atomically: the file appears complete or not at all)."""
    from graphrec.serving.scores import export_scores

    emit(export_scores(open_store(ctx), kind, output).as_dict(), fmt)


@cli.command()
@click.argument("user", required=False)
@click.option("--user", "user_id", help="External id of the user to recommend friends to (the same as the USER argument).")
@click.option("--users-file", type=click.Path(path_type=Path), help="Batch mode: one external id per line.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Batch mode: JSON-lines output file.")
@click.option("-k", "k", default=20, show_default=True, type=click.IntRange(1), help="Number of suggestions.")
@click.option("--bot-threshold", type=click.FloatRange(0.0, 1.0), help="Drop accounts whose score in the latest bot-scoring run is above this [default: those the run flagged, at its model's threshold].")
@click.option("--no-bot-filter", is_flag=True, help="Keep accounts regardless of bot scores.")
@click.option("--model-version", help="Model version (default: the latest trained).")
@engine_options
@FORMAT
@click.pass_context
def recommend(
    ctx: click.Context,
    user: str | None,
    user_id: str | None,
    users_file: Path | None,
    output: Path | None,
    k: int,
    bot_threshold: float | None,
    no_bot_filter: bool,
    model_version: str | None,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    fmt: str,
) -> None:
    """Friend suggestions for USER with scores and reasons, how many candidates each filter
    removed (self, friends, blocked, deleted, synthetic, likely bots) and whether the model is
    older than the store. Batch mode: --users-file with --output, one JSON line per user
    (--engine ray: computed by Ray workers, the same file)."""
    from graphrec.errors import InputError

    user_id = user_argument(user, user_id, required=False)
    if (user_id is None) == (users_file is None):
        raise InputError("give exactly one of USER (or --user USER) or --users-file FILE")
    if user_id is not None and output is not None:
        raise InputError("--output goes with --users-file (use --format json for one user)")
    if users_file is not None and output is None:
        raise InputError("--users-file needs --output FILE")
    if users_file is None and engine != "local":
        raise InputError("--engine ray goes with --users-file (one user is served in this process)")
    options = ray_options(engine, ray_address, workers)

    from graphrec.serving.recommend import recommend_batch, recommend_user

    threshold = None if no_bot_filter else ("flagged" if bot_threshold is None else bot_threshold)
    if users_file is not None:
        assert output is not None
        report = recommend_batch(open_store(ctx), users_file, output, k=k, bot_threshold=threshold, version=model_version,
                                engine=engine, ray=options)
        emit(report.summary(), fmt, lambda d: "\n".join(f"{key:<10s}  {show(value)}" for key, value in d.items()))
        report.check()
        return
    assert user_id is not None
    result = recommend_user(open_store(ctx), user_id, k=k, bot_threshold=threshold, version=model_version)

    def table(d: dict[str, Any]) -> str:
        lines = [f"friend suggestions for {d['user']} (model {d['model']})"]
        for i, s in enumerate(d["recommendations"], 1):
            lines.append(f"{i:3d}. {s['user']:>10s}  score {show(s['score']):>7s}  {'; '.join(s['reasons'])}")
        if not d["recommendations"]:
            lines.append("  (no suggestions)")
        return "\n".join(lines + [result.filter_summary()] + freshness_lines(d))

    emit(result.summary(), fmt, table)
