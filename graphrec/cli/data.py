"""Data commands: schema migrations, imports, exports, store statistics and user look-ups."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphrec.cli.app import FORMAT, cell, cli, emit, kv_table, open_store
from graphrec.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.report import ImportReport
    from graphrec.store.store import DowngradePlan


# -- db ---------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Alembic revision to upgrade to.")
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Bring the database schema up to REVISION (creates it in an empty database)."""
    before, after = open_store(ctx).initialize(revision)
    click.echo(f"database schema: {before or 'empty'} -> {after}")


@db.command("downgrade")
@click.argument("revision")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (required when stdin is not a terminal).")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str, yes: bool) -> None:
    """Downgrade the schema to REVISION ('base' removes every graphrec table and all data).

    Says first which tables (and how many rows) would be removed, then asks for confirmation
    on a terminal; elsewhere --yes is required."""

    def confirm(plan: "DowngradePlan") -> bool:
        click.echo(plan.describe(), err=True)
        if yes or not plan.dropped:
            return True
        if not sys.stdin.isatty():
            raise InputError("db downgrade removes data and stdin is not a terminal: pass --yes to confirm")
        return click.confirm("Proceed?", default=False, err=True)

    before, after = open_store(ctx).downgrade(revision, confirm=confirm)
    click.echo(f"database schema: {before or 'empty'} -> {after or 'empty'}")


@db.command("current")
@FORMAT
@click.pass_context
def db_current(ctx: click.Context, fmt: str) -> None:
    """Show the schema revision of the database and of this graphrec."""
    emit(open_store(ctx).schema_status().as_dict(), fmt)


# -- import -----------------------------------------------------------------------------------
def _report(report: "ImportReport", fmt: str) -> None:
    emit(report.as_dict(), fmt)


@cli.group("import")
def import_() -> None:
    """Import users, friendships, labels, blocks or the bundled dataset (atomic, idempotent)."""


_ID_TYPE = click.option(
    "--id-type", type=click.Choice(["int", "str"]), default="int", show_default=True, help="Integer ids, or any text."
)


def _edge_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.argument("file", type=click.Path(path_type=Path)),
            click.option("--input-format", type=click.Choice(["auto", "snap", "csv"]), default="auto", show_default=True, help="auto: .csv/.tsv are CSV, anything else SNAP."),
            click.option("--source-column", help="CSV column of the first user (default: first column)."),
            click.option("--target-column", help="CSV column of the second user (default: second column)."),
            click.option("--delimiter", help="Field separator (default: whitespace for SNAP, ',' for CSV)."),
            _ID_TYPE,
            click.option("--skip-invalid", is_flag=True, help="Skip self-loops, duplicates and bad ids (counted) instead of failing."),
            FORMAT,
        ]
    ):
        f = option(f)
    return f


def _edge_kwargs(kw: dict[str, Any]) -> dict[str, Any]:
    return {
        "fmt": kw["input_format"],
        "source_column": kw["source_column"],
        "target_column": kw["target_column"],
        "delimiter": kw["delimiter"],
        "id_type": kw["id_type"],
        "skip_invalid": kw["skip_invalid"],
    }


@import_.command("edges")
@_edge_options
@click.option("--create-users/--no-create-users", default=True, show_default=True, help="Create users the file names but the store lacks.")
@click.pass_context
def import_edges(ctx: click.Context, file: Path, fmt: str, create_users: bool, **kw: Any) -> None:
    """Import undirected friendships from a SNAP edge list or a CSV."""
    report = open_store(ctx, create=True).import_edges(file, create_users=create_users, **_edge_kwargs(kw))
    _report(report, fmt)


@import_.command("blocks")
@_edge_options
@click.pass_context
def import_blocks(ctx: click.Context, file: Path, fmt: str, **kw: Any) -> None:
    """Import blocks: each row says the first user blocked the second."""
    report = open_store(ctx, create=True).import_blocks(file, **_edge_kwargs(kw))
    _report(report, fmt)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@import_.command("users")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id-column", default="id", show_default=True, help="CSV column holding the user id.")
@_ID_TYPE
@click.option("--delimiter", default=",", show_default=True, help="Field separator of the CSV.")
@click.option("--text-columns", help="Comma-separated columns to keep as text even if numeric (e.g. zip codes).")
@click.option("--feature-columns", help="Comma-separated columns that must be numeric features.")
@click.option("--add-columns", is_flag=True,
              help="Allow feature columns the store does not have yet (widens every user's feature vector; retrain models).")
@click.option("--allow-synthetic-change", is_flag=True,
              help="Allow marking existing real users synthetic (is_synthetic=true); `synth purge` deletes synthetic users.")
@FORMAT
@click.pass_context
def import_users(ctx: click.Context, file: Path, id_column: str, id_type: str, delimiter: str, text_columns: str | None,
                 feature_columns: str | None, add_columns: bool, allow_synthetic_change: bool, fmt: str) -> None:
    """Import users from a CSV: numeric columns become features, others profile attributes.

    A feature column the store does not have yet is refused unless --add-columns is given."""
    report = open_store(ctx, create=True).import_users(
        file,
        allow_new_columns=add_columns,
        allow_synthetic_change=allow_synthetic_change,
        id_column=id_column,
        id_type=id_type,
        delimiter=delimiter,
        text_columns=_names(text_columns),
        feature_columns=_names(feature_columns),
    )
    _report(report, fmt)


@import_.command("labels")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id-column", default="id", show_default=True, help="CSV column holding the user id.")
@click.option("--label-column", default="label", show_default=True, help="CSV column holding the label (e.g. bot, human).")
@click.option("--source", "default_source", default="import", show_default=True, help="Source for rows without a 'source' column.")
@_ID_TYPE
@click.option("--delimiter", default=",", show_default=True, help="Field separator of the CSV.")
@FORMAT
@click.pass_context
def import_labels(ctx: click.Context, file: Path, id_column: str, label_column: str, default_source: str, id_type: str, delimiter: str, fmt: str) -> None:
    """Import labels (e.g. bot/human) for existing users from a CSV id,label[,source]."""
    report = open_store(ctx, create=True).import_labels(
        file, id_column=id_column, label_column=label_column, default_source=default_source, id_type=id_type, delimiter=delimiter
    )
    _report(report, fmt)


@import_.command("ego-facebook")
@click.option("--path", type=click.Path(path_type=Path), help="Folder of SNAP ego-Facebook files (default: the bundled copy).")
@click.option("--with-demo-bots", is_flag=True,
              help="Also add 200 injected bots (flagged synthetic, never recommended) and bot/human labels on 10% of each "
                   "class, so that `train bots`, `score` and `bots` can be tried.")
@click.option("--add-columns", is_flag=True, help="Allow feature columns the store does not have yet.")
@FORMAT
@click.pass_context
def import_ego_facebook(ctx: click.Context, path: Path | None, with_demo_bots: bool, add_columns: bool, fmt: str) -> None:
    """Import SNAP ego-Facebook: 4,039 users, 88,234 friendships, 1,406 features, 193 circles."""
    store = open_store(ctx, create=True)
    if with_demo_bots:
        from graphrec.tasks.bots.demo import import_ego_facebook_with_demo_bots

        report = import_ego_facebook_with_demo_bots(store, path, allow_new_columns=add_columns)
    else:
        report = store.import_ego_facebook(path, allow_new_columns=add_columns)
    _report(report, fmt)


# -- read commands ----------------------------------------------------------------------------
@cli.command()
@FORMAT
@click.pass_context
def stats(ctx: click.Context, fmt: str) -> None:
    """Users, friendships, labels, density and connected components, and each served model's
    store revision against the store's (stale models say which command refreshes them)."""
    from graphrec.serving.freshness import store_overview

    emit(store_overview(open_store(ctx)), fmt, _stats_table)


def _stats_table(data: dict[str, Any]) -> str:
    models = data.get("models") or []
    lines = [kv_table({k: v for k, v in data.items() if k != "models"})]
    lines.append("models: none trained yet" if not models else "models:")
    lines += [f"  {m['message']}" for m in models]
    return "\n".join(lines)


@cli.group()
def user() -> None:
    """Look up one user."""


@user.command("show")
@click.argument("user_id")
@FORMAT
@click.pass_context
def user_show(ctx: click.Context, user_id: str, fmt: str) -> None:
    """A user's profile, degree and labels."""
    emit(open_store(ctx).user_profile(user_id), fmt, _profile_table)


#: How many of a user's non-zero features ``user show`` prints in a table (JSON has them all).
SHOWN_FEATURES = 8


def _profile_table(profile: dict[str, Any]) -> str:
    """The profile as key/value lines; features shortened to the first non-zero ones, with counts."""
    features: dict[str, float] = profile["features"]
    shown = ", ".join(f"{name}={cell(value)}" for name, value in list(features.items())[:SHOWN_FEATURES])
    more = len(features) - SHOWN_FEATURES
    summary = f"{len(features)} non-zero of {profile['feature_columns']}" + (f": {shown}" if shown else "")
    if more > 0:
        summary += f", ... ({more} more; --format json lists them all)"
    rows = {k: v for k, v in profile.items() if k not in ("features", "feature_columns")}
    rows["features"] = summary
    return kv_table(rows)


@user.command("friends")
@click.argument("user_id")
@FORMAT
@click.pass_context
def user_friends(ctx: click.Context, user_id: str, fmt: str) -> None:
    """The user's friends."""
    friends = open_store(ctx).neighbours(user_id)
    emit({"user": user_id, "friends": friends}, fmt, lambda d: "\n".join(d["friends"]))


@user.command("mutual")
@click.argument("user_a")
@click.argument("user_b")
@FORMAT
@click.pass_context
def user_mutual(ctx: click.Context, user_a: str, user_b: str, fmt: str) -> None:
    """Mutual friends of two users."""
    mutual = open_store(ctx).mutual_friends(user_a, user_b)
    emit({"users": [user_a, user_b], "mutual_friends": mutual}, fmt, lambda d: "\n".join(d["mutual_friends"]))


@cli.command("export")
@click.argument("what", type=click.Choice(["users", "friendships", "labels"]))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="CSV file to write.")
@FORMAT
@click.pass_context
def export(ctx: click.Context, what: str, output: Path, fmt: str) -> None:
    """Export users, friendships or labels as CSV that `graphrec import` reads back."""
    emit(open_store(ctx).export(what, output).as_dict(), fmt)

