"""The ``graphrec`` command line. Thin by design: parse options, call the library, print.

Every read command takes ``--format table|json``. Exit codes: 0 success, 1 unexpected failure,
2 bad input or usage, 3 unknown user, 4 not ready (database not initialised, older schema,
unreachable, no trained model).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from graphrec.config import DATABASE_URL_ENV, HOME_ENV, Settings
from graphrec.errors import GraphrecError

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="Output format."
)


class _Group(click.Group):
    """Turns graphrec's expected errors into one ``error: ...`` line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GraphrecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except Exception as exc:  # database unreachable and similar: no traceback for operators
            from sqlalchemy.exc import OperationalError

            if isinstance(exc, OperationalError):
                first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
                click.echo(f"error: database error: {first}", err=True)
                sys.exit(4)
            raise


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj


def _store(ctx: click.Context, *, create: bool = False) -> Any:
    from graphrec.store.store import GraphStore

    store = GraphStore(settings=_settings(ctx))
    if create and store.initialize_if_empty():
        click.echo(f"initialised empty database {store.engine.url.render_as_string()}", err=True)
    return store


def _emit(data: Any, fmt: str, table: Callable[[Any], str] | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=None, sort_keys=False, default=str))
    else:
        click.echo(table(data) if table else _kv_table(data))


def _kv_table(data: dict[str, Any]) -> str:
    width = max((len(k) for k in data), default=0)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
        elif isinstance(value, float):
            value = f"{value:.6g}"
        lines.append(f"{key.ljust(width)}  {value}")
    return "\n".join(lines)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar=DATABASE_URL_ENV, help=f"SQLAlchemy URL [env {DATABASE_URL_ENV}; default sqlite:///graphrec.db]")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), envvar=HOME_ENV, help=f"Models and indexes folder [env {HOME_ENV}]")
@click.version_option(package_name="graphrec")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, home: Path | None) -> None:
    """graphrec: friend recommendation and graph analysis over a SQL-backed social graph."""
    ctx.obj = Settings.resolve(database_url, home)


# -- db ---------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Bring the database schema up to REVISION (creates it in an empty database)."""
    store = _store(ctx)
    before, after = store.initialize(revision)
    click.echo(f"database schema: {before or 'empty'} -> {after}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every graphrec table)."""
    from graphrec.store import migrate

    store = _store(ctx)
    before, after = migrate.downgrade(store.engine, revision)
    click.echo(f"database schema: {before or 'empty'} -> {after or 'empty'}")


@db.command("current")
@FORMAT
@click.pass_context
def db_current(ctx: click.Context, fmt: str) -> None:
    """Show the schema revision of the database and of this graphrec."""
    from graphrec.store import migrate

    store = _store(ctx)
    current, head = migrate.schema_status(store.engine)
    _emit({"database": store.engine.url.render_as_string(), "current": current, "head": head, "up_to_date": current == head}, fmt)


# -- import -----------------------------------------------------------------------------------
def _report(report: Any, fmt: str) -> None:
    _emit(report.as_dict(), fmt)


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
    report = _store(ctx, create=True).import_edges(file, create_users=create_users, **_edge_kwargs(kw))
    _report(report, fmt)


@import_.command("blocks")
@_edge_options
@click.pass_context
def import_blocks(ctx: click.Context, file: Path, fmt: str, **kw: Any) -> None:
    """Import blocks: each row says the first user blocked the second."""
    report = _store(ctx, create=True).import_blocks(file, **_edge_kwargs(kw))
    _report(report, fmt)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else []


@import_.command("users")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id-column", default="id", show_default=True)
@_ID_TYPE
@click.option("--delimiter", default=",", show_default=True)
@click.option("--text-columns", help="Comma-separated columns to keep as text even if numeric (e.g. zip codes).")
@click.option("--feature-columns", help="Comma-separated columns that must be numeric features.")
@FORMAT
@click.pass_context
def import_users(ctx: click.Context, file: Path, id_column: str, id_type: str, delimiter: str, text_columns: str | None, feature_columns: str | None, fmt: str) -> None:
    """Import users from a CSV: numeric columns become features, others profile attributes."""
    report = _store(ctx, create=True).import_users(
        file,
        id_column=id_column,
        id_type=id_type,
        delimiter=delimiter,
        text_columns=_names(text_columns),
        feature_columns=_names(feature_columns),
    )
    _report(report, fmt)


@import_.command("labels")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--id-column", default="id", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--source", "default_source", default="import", show_default=True, help="Source for rows without a 'source' column.")
@_ID_TYPE
@click.option("--delimiter", default=",", show_default=True)
@FORMAT
@click.pass_context
def import_labels(ctx: click.Context, file: Path, id_column: str, label_column: str, default_source: str, id_type: str, delimiter: str, fmt: str) -> None:
    """Import labels (e.g. bot/human) for existing users from a CSV id,label[,source]."""
    report = _store(ctx, create=True).import_labels(
        file, id_column=id_column, label_column=label_column, default_source=default_source, id_type=id_type, delimiter=delimiter
    )
    _report(report, fmt)


@import_.command("ego-facebook")
@click.option("--path", type=click.Path(path_type=Path), help="Folder of SNAP ego-Facebook files (default: the bundled copy).")
@FORMAT
@click.pass_context
def import_ego_facebook(ctx: click.Context, path: Path | None, fmt: str) -> None:
    """Import SNAP ego-Facebook: 4,039 users, 88,234 friendships, 1,406 features, 193 circles."""
    report = _store(ctx, create=True).import_ego_facebook(path)
    _report(report, fmt)


# -- read commands ----------------------------------------------------------------------------
@cli.command()
@FORMAT
@click.pass_context
def stats(ctx: click.Context, fmt: str) -> None:
    """Users, friendships, labels, density and connected components."""
    _emit(_store(ctx).stats().as_dict(), fmt)


@cli.group()
def user() -> None:
    """Look up one user."""


@user.command("show")
@click.argument("user_id")
@FORMAT
@click.pass_context
def user_show(ctx: click.Context, user_id: str, fmt: str) -> None:
    """A user's profile, degree and labels."""
    store = _store(ctx)
    rec = store.get_user(user_id)
    data = {
        "id": rec.external_id,
        "is_synthetic": rec.is_synthetic,
        "deleted": rec.is_deleted,
        "degree": 0 if rec.is_deleted else store.degree(user_id),
        "attributes": rec.attributes,
        "features": rec.features,
        "created_at": rec.created_at.isoformat(),
        "updated_at": rec.updated_at.isoformat(),
    }
    _emit(data, fmt)


@user.command("friends")
@click.argument("user_id")
@FORMAT
@click.pass_context
def user_friends(ctx: click.Context, user_id: str, fmt: str) -> None:
    """The user's friends."""
    friends = _store(ctx).neighbours(user_id)
    _emit({"user": user_id, "friends": friends}, fmt, lambda d: "\n".join(d["friends"]))


@user.command("mutual")
@click.argument("user_a")
@click.argument("user_b")
@FORMAT
@click.pass_context
def user_mutual(ctx: click.Context, user_a: str, user_b: str, fmt: str) -> None:
    """Mutual friends of two users."""
    mutual = _store(ctx).mutual_friends(user_a, user_b)
    _emit({"users": [user_a, user_b], "mutual_friends": mutual}, fmt, lambda d: "\n".join(d["mutual_friends"]))


# -- link prediction --------------------------------------------------------------------------
@cli.group()
def train() -> None:
    """Train models (saved as versioned artifacts under GRAPHREC_HOME)."""


@train.command("linkpred")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1))
@click.option("--gnn-dim", default=16, show_default=True, type=click.IntRange(0), help="GCN embedding width (0: no GNN term).")
@FORMAT
@click.pass_context
def train_linkpred(ctx: click.Context, seed: int, epochs: int, gnn_dim: int, fmt: str) -> None:
    """Train the friend-recommendation link ranker on the store's current graph."""
    from graphrec.tasks.linkpred.model import fit_and_save
    from graphrec.tasks.linkpred.train import TrainConfig

    art = fit_and_save(_store(ctx), TrainConfig(seed=seed, epochs=epochs, gnn_dim=gnn_dim))
    training = art.manifest["training"]
    _emit({"model": "linkpred", "version": art.version, "path": str(art.path), "seconds": training["seconds"], "train_loss": training["train_loss"][-1], "data_revision": art.manifest["data"]["revision"]}, fmt)


@train.command("bots")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2), help="Cross-fitting folds (one model each).")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--target-precision", default=0.9, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="The flagging threshold is the lowest whose out-of-fold precision reaches this.")
@click.option("--positive-label", default="bot", show_default=True, help="Label that marks a bot; any other label is a non-bot.")
@click.option("--augment", type=click.Choice(["vae", "gan", "copy"]), help="Add synthetic examples of the scarce class while training (vae, gan: class-conditional profiles; copy: the no-generator ablation).")
@click.option("--include-synthetic", is_flag=True, help="Also learn from labels of synthetic users in the store.")
@FORMAT
@click.pass_context
def train_bots(ctx: click.Context, seed: int, folds: int, epochs: int, target_precision: float, positive_label: str, augment: str | None,
               include_synthetic: bool, fmt: str) -> None:
    """Train the bot detector (GNN node classification) from the labels in the store."""
    from graphrec.tasks.bots.model import train_from_store
    from graphrec.tasks.bots.train import BotTrainConfig

    cfg = BotTrainConfig(seed=seed, folds=folds, epochs=epochs, target_precision=target_precision)
    art = train_from_store(_store(ctx), cfg, positive_label=positive_label, augment=augment, include_synthetic=include_synthetic)
    m = art.manifest
    _emit({"model": "bot", "version": art.version, "path": str(art.path), "seconds": m["training_seconds"], "threshold": m["threshold"],
           "threshold_rule": m["threshold_rule"], "out_of_fold": m["metrics"]["out_of_fold"], "augment": m["metrics"].get("augment"),
           "data_revision": m["data"]["revision"]}, fmt)


@train.command("siamese")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1))
@click.option("--loss", type=click.Choice(["in_batch", "contrastive"]), default="in_batch", show_default=True)
@FORMAT
@click.pass_context
def train_siamese(ctx: click.Context, seed: int, epochs: int, loss: str, fmt: str) -> None:
    """Train the Siamese profile encoder and index every user's embedding in FAISS."""
    from graphrec.tasks.siamese.model import fit_and_save
    from graphrec.tasks.siamese.train import SiameseConfig

    art = fit_and_save(_store(ctx), SiameseConfig(seed=seed, epochs=epochs, loss=loss))
    t = art.manifest["training"]
    _emit({"model": "siamese", "version": art.version, "path": str(art.path), "seconds": t["seconds"], "train_loss": t["train_loss"][-1],
           "users_indexed": art.manifest["data"]["users"]}, fmt)


@train.command("anomaly")
@click.option("--kind", type=click.Choice(["context", "dominant", "vanilla", "denoising", "sparse"]), default="context", show_default=True,
              help="Detector: context (profile vs friends + graph structure; the default by measurement), the DOMINANT graph "
                   "autoencoder, or a feature autoencoder.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--contamination", default=0.05, show_default=True, type=click.FloatRange(0.0, 0.5, min_open=True, max_open=True),
              help="Expected share of anomalous users: the flagging threshold is this upper quantile of the training scores.")
@click.option("--tied", is_flag=True, help="Tie decoder weights to the encoder's (autoencoder kinds).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Torch threads.")
@FORMAT
@click.pass_context
def train_anomaly(ctx: click.Context, kind: str, seed: int, contamination: float, tied: bool, threads: int, fmt: str) -> None:
    """Train the unsupervised anomaly detector on the store's current users and graph."""
    from graphrec.tasks.anomaly.model import train_from_store

    overrides = {"tied": True} if tied and kind != "dominant" else {}
    art = train_from_store(_store(ctx), kind=kind, seed=seed, contamination=contamination, threads=threads, **overrides)
    m = art.manifest
    _emit({"model": "anomaly", "detector": m["detector"], "version": art.version, "path": str(art.path), **m["metrics"],
           "data_revision": m["data"]["revision"]}, fmt)


@cli.group("eval")
def eval_() -> None:
    """Evaluate models against baselines measured in the same run."""


@eval_.command("linkpred")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--test-fraction", default=0.1, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--max-users", default=1000, show_default=True, type=click.IntRange(1))
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1))
@click.option("--gnn-dim", default=16, show_default=True, type=click.IntRange(0))
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@FORMAT
@click.pass_context
def eval_linkpred(ctx: click.Context, seed: int, test_fraction: float, max_users: int, epochs: int, gnn_dim: int, include_synthetic: bool, fmt: str) -> None:
    """Hold out friendships, rank every non-friend; the model beside CN, AA, RA and PPR."""
    from graphrec.tasks.linkpred.evaluate import evaluate_linkpred
    from graphrec.tasks.linkpred.profiles import ProfileMatrix
    from graphrec.tasks.linkpred.train import TrainConfig

    snap = _store(ctx).snapshot(include_synthetic=include_synthetic)
    report, _ = evaluate_linkpred(
        snap.edge_array(), snap.num_nodes, ProfileMatrix.from_dense(snap.features), seed=seed, test_fraction=test_fraction,
        max_users=max_users, config=TrainConfig(seed=seed, epochs=epochs, gnn_dim=gnn_dim),
    )
    data = {"params": report.params, "metrics": report.metrics, "seconds": report.seconds}

    def table(d: dict[str, Any]) -> str:
        lines = [f"{'method':24s} {'recall@20':>9s} {'recall@50':>9s} {'mrr':>7s}"]
        for name, m in d["metrics"].items():
            lines.append(f"{name:24s} {m['recall@20']:9.3f} {m['recall@50']:9.3f} {m['mrr']:7.3f}")
        lines.append(f"users={d['params']['max_users']} test_edges={d['params']['test_edges']} seed={d['params']['seed']}")
        return "\n".join(lines)

    _emit(data, fmt, table)


@eval_.command("bots")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--test-fraction", default=0.3, show_default=True, type=click.FloatRange(0.05, 0.9))
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2))
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1))
@click.option("--positive-label", default="bot", show_default=True)
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@FORMAT
@click.pass_context
def eval_bots(ctx: click.Context, seed: int, test_fraction: float, folds: int, epochs: int, positive_label: str, include_synthetic: bool, fmt: str) -> None:
    """Stratified split of the labelled users; the model beside a feature-only classifier, label
    propagation and personalized PageRank, trained on the same labels in the same run."""
    from graphrec.tasks.bots.evaluate import evaluate_bots, stratified_split
    from graphrec.tasks.bots.model import snapshot_labels
    from graphrec.tasks.bots.train import BotTrainConfig
    from graphrec.errors import StoreStateError

    snap = _store(ctx).snapshot(include_synthetic=include_synthetic)
    labels = snapshot_labels(snap, positive_label)
    if min(int(labels.is_bot.sum()), int((~labels.is_bot).sum())) < 4:
        raise StoreStateError(f"eval bots needs at least 4 labelled bots and 4 labelled non-bots, the store has {int(labels.is_bot.sum())} and {int((~labels.is_bot).sum())}")
    tr, te = stratified_split(labels.nodes, labels.is_bot, test_fraction, seed)
    report = evaluate_bots(snap.indptr, snap.indices, snap.features, snap.feature_names, labels.nodes[tr], labels.is_bot[tr],
                           labels.nodes[te], labels.is_bot[te], BotTrainConfig(seed=seed, folds=folds, epochs=epochs))
    data = {"seed": seed, **report.as_dict()}

    def table(d: dict[str, Any]) -> str:
        keys = ["roc_auc", "average_precision", "f1"]
        pk = next(k for k in d["metrics"]["model"] if k.startswith("precision@"))
        lines = [f"{'method':24s} {'roc_auc':>8s} {'avg_prec':>8s} {'f1':>6s} {pk:>14s}"]
        for name, m in d["metrics"].items():
            lines.append(f"{name:24s} {m[keys[0]]:8.4f} {m[keys[1]]:8.4f} {m[keys[2]]:6.3f} {m[pk]:14.3f}")
        lines.append(f"train={d['n_train']} test={d['n_test']} (bots {d['test_bots']}) seed={d['seed']} threshold={d['threshold']:.3f}")
        return "\n".join(lines)

    _emit(data, fmt, table)


@eval_.command("siamese")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--hidden-fraction", default=0.1, show_default=True, type=click.FloatRange(0.01, 0.5))
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1))
@click.option("--loss", type=click.Choice(["in_batch", "contrastive"]), default="in_batch", show_default=True)
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@FORMAT
@click.pass_context
def eval_siamese(ctx: click.Context, seed: int, hidden_fraction: float, epochs: int, loss: str, include_synthetic: bool, fmt: str) -> None:
    """Cold start: hide every friendship of some users, rank all users from the profile alone;
    the model beside popularity and raw profile cosine (and circle precision@10)."""
    from graphrec.tasks.siamese.evaluate import evaluate_cold_start
    from graphrec.tasks.siamese.train import SiameseConfig

    snap = _store(ctx).snapshot(include_synthetic=include_synthetic)
    report = evaluate_cold_start(snap.features, snap.edge_array(), SiameseConfig(seed=seed, epochs=epochs, loss=loss),
                                 circles=[c.members for c in snap.circles], hidden_fraction=hidden_fraction, seed=seed)
    data = {"seed": seed, **report.as_dict()}

    def table(d: dict[str, Any]) -> str:
        lines = [f"{'method':16s} {'recall@10':>9s} {'recall@50':>9s} {'mrr':>7s}"]
        for name, m in d["metrics"].items():
            if name != "circles p@10":
                lines.append(f"{name:16s} {m['recall@10']:9.3f} {m['recall@50']:9.3f} {m['mrr']:7.3f}")
        if "circles p@10" in d["metrics"]:
            c = d["metrics"]["circles p@10"]
            lines.append(f"circle precision@10: siamese {c['siamese']:.3f}, profile cosine {c['profile cosine']:.3f}")
        lines.append(f"hidden users={d['hidden_users']} evaluated={d['evaluated_users']} seed={d['seed']}")
        return "\n".join(lines)

    _emit(data, fmt, table)


@cli.command("similar")
@click.option("--user", "user_id", required=True, help="External id of the user.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1))
@click.option("--model-version", help="Siamese model version (default: the latest trained).")
@FORMAT
@click.pass_context
def similar(ctx: click.Context, user_id: str, k: int, model_version: str | None, fmt: str) -> None:
    """Users with the most similar learned profile embedding (works for users with no friends)."""
    from graphrec.tasks.siamese.model import SimilarUsers

    found = SimilarUsers(_store(ctx), version=model_version).similar(user_id, k)
    data = {"user": user_id, "similar": [{"user": e, "similarity": round(s, 4)} for e, s in found]}
    _emit(data, fmt, lambda d: "\n".join(f"{it['user']:>12s}  {it['similarity']:.4f}" for it in d["similar"]) or "(none)")


@cli.group("index")
def index_group() -> None:
    """The Siamese model's FAISS index."""


@index_group.command("sync")
@FORMAT
@click.pass_context
def index_sync(ctx: click.Context, fmt: str) -> None:
    """Incremental update: embed users created or changed since the last sync, drop deleted ones."""
    from graphrec.tasks.siamese.model import SimilarUsers

    svc = SimilarUsers(_store(ctx))
    _emit({"model_version": svc.version, **svc.sync()}, fmt)


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

    result = score_bots(_store(ctx), run_date=run_date.date() if run_date else None, retrain=retrain, dry_run=dry_run, replace=replace,
                        seed=seed, chunk=chunk_size, threads=threads, keep_runs=keep_runs, anomalies=not no_anomalies,
                        log=JobLog(JOB, log_format))
    _emit(result.as_dict(), fmt)


def _latest_run(conn: Any, kind: str) -> Any:
    from graphrec.errors import StoreStateError
    from graphrec.store import scores as score_store

    run = score_store.latest_complete(conn, kind)
    if run is None:
        hint = "graphrec score-bots" if kind == "bot" else "the nightly scoring job"
        raise StoreStateError(f"no complete {kind} scoring run in the store: run `{hint}` first")
    return run


@cli.command("bots")
@click.option("--top", "top", default=20, show_default=True, type=click.IntRange(1), help="How many users to list.")
@FORMAT
@click.pass_context
def bots_cmd(ctx: click.Context, top: int, fmt: str) -> None:
    """The most likely bots of the latest complete scoring run, with the signals behind each."""
    import json as _json

    from graphrec.store import scores as score_store

    store = _store(ctx)
    with store.read() as conn:
        run = _latest_run(conn, "bot")
        rows = score_store.top_scores(conn, run.id, top)
    items = []
    for ext, score, flagged, details in rows:
        details = _json.loads(details) if isinstance(details, str) else details
        items.append({"user": ext, "score": round(score, 6), "flagged": flagged, "signals": details or {}})
    data = {"run_id": run.id, "run_date": run.run_date.isoformat(), "threshold": run.threshold, "bots": items}

    def table(d: dict[str, Any]) -> str:
        lines = [f"run {d['run_id']} of {d['run_date']}, threshold {d['threshold']:.3f}",
                 f"{'user':>12s} {'score':>7s} {'flag':>4s}  signals"]
        for it in d["bots"]:
            sig = ", ".join(f"{k}={v}" for k, v in it["signals"].items() if k != "score")
            lines.append(f"{it['user']:>12s} {it['score']:7.4f} {'yes' if it['flagged'] else 'no':>4s}  {sig}")
        return "\n".join(lines)

    _emit(data, fmt, table)


@cli.command("anomalies")
@click.option("--top", "top", default=20, show_default=True, type=click.IntRange(1), help="How many users to list.")
@click.option("--live", is_flag=True, help="Score the current graph with the served model instead of reading the latest nightly run.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Torch threads (with --live).")
@FORMAT
@click.pass_context
def anomalies_cmd(ctx: click.Context, top: int, live: bool, threads: int, fmt: str) -> None:
    """The most anomalous users, each with why: the view that drives the score (attributes or
    structure) and the profile features that fit worst (observed vs expected).

    Reads the latest complete anomaly run of the nightly job; with --live, or when no run exists
    yet, scores the current graph with the served model (nothing is written)."""
    import json as _json

    from graphrec import artifacts
    from graphrec.tasks.anomaly import model as anomaly_model
    from graphrec.store import scores as score_store

    store = _store(ctx)
    with store.read() as conn:
        run = None if live else score_store.latest_complete(conn, anomaly_model.KIND)
        rows = score_store.top_scores(conn, run.id, top) if run is not None else []
    if run is not None:
        items = [{"user": ext, "score": round(score, 6), "flagged": flagged,
                  **((_json.loads(d) if isinstance(d, str) else d) or {})} for ext, score, flagged, d in rows]
        data: dict[str, Any] = {"source": f"run {run.id} of {run.run_date.isoformat()}", "threshold": run.threshold, "anomalies": items}
    else:
        if artifacts.latest_version(store.settings.home, anomaly_model.KIND) is None:
            from graphrec.errors import StoreStateError

            raise StoreStateError("no anomaly model and no anomaly scoring run: run `graphrec train anomaly` first")
        det, art = anomaly_model.load_model(store.settings.home)
        items = anomaly_model.top_anomalies(store, top=top, threads=threads)
        data = {"source": f"live, model {art.version}", "threshold": det.threshold_, "anomalies": items}

    def table(d: dict[str, Any]) -> str:
        lines = [f"{d['source']}, threshold {d['threshold']:.4f}", f"{'user':>12s} {'score':>7s} {'flag':>4s} {'driver':>10s}  why"]
        for it in d["anomalies"]:
            feats = ", ".join(f"{f['feature']}={f['value']:g} (expected {f['expected']:.2f})" for f in it.get("features", [])[:3])
            why = feats if it.get("driver") == "attributes" else (
                f"friends outside own communities {it.get('friends_outside_own_communities', {})}, {it.get('friends')} friends")
            lines.append(f"{it['user']:>12s} {it['score']:7.4f} {'yes' if it['flagged'] else 'no':>4s} {it.get('driver', ''):>10s}  {why}")
        return "\n".join(lines)

    _emit(data, fmt, table)


@cli.group("synth", invoke_without_command=True)
@click.option("--model", "model", type=click.Choice(["vae", "gan"]), default="vae", show_default=True, help="Profile generator.")
@click.option("--n", "n", type=click.IntRange(1), help="How many synthetic users to create.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--label", help="Give every synthetic user this label (e.g. bot); profiles come from a class-conditional model.")
@click.option("--epochs", type=click.IntRange(1), help="Generator training epochs [default: the model's].")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1), help="Torch threads.")
@FORMAT
@click.pass_context
def synth(ctx: click.Context, model: str, n: int | None, seed: int, label: str | None, epochs: int | None, threads: int, fmt: str) -> None:
    """Create N synthetic users, always flagged is_synthetic: profiles from a VAE or GAN trained on
    the real users, friendships by profile-anchored triadic closure, all in one transaction.
    Synthetic users are never recommended and are excluded from training and evaluation.

    `graphrec synth purge` removes every synthetic user and friendship."""
    if ctx.invoked_subcommand is not None:
        return
    if n is None:
        raise click.UsageError("give --n N (or the purge subcommand)")
    from graphrec.tasks.synth.synthesize import synthesize

    report = synthesize(_store(ctx), model=model, n=n, seed=seed, label=label, epochs=epochs, threads=threads)
    _emit(report.as_dict(), fmt)


@synth.command("purge")
@FORMAT
@click.pass_context
def synth_purge(ctx: click.Context, fmt: str) -> None:
    """Delete every synthetic user with their friendships, labels and scores (one transaction)."""
    counts = _store(ctx).purge_synthetic()
    _emit({"removed": "synthetic users", **counts}, fmt)


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
    import csv

    from graphrec.fileio import atomic_output
    from graphrec.store import scores as score_store

    store = _store(ctx)
    count = 0
    with store.read() as conn:
        run = _latest_run(conn, kind)
        with atomic_output(output) as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["id", "score", "is_synthetic"])
            for batch in score_store.iter_scores(conn, run.id):
                writer.writerows((ext, repr(score), "true" if synth else "false") for ext, score, synth in batch)
                count += len(batch)
    _emit({"exported": f"{kind} scores", "run_id": run.id, "run_date": run.run_date.isoformat(), "rows": count, "output": str(output)}, fmt)


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
    from graphrec.errors import GraphrecError, InputError, NotFoundError
    from graphrec.fileio import atomic_output, read_id_lines

    if (user_id is None) == (users_file is None):
        raise InputError("give exactly one of --user ID or --users-file FILE")
    if user_id is not None and output is not None:
        raise InputError("--output goes with --users-file (use --format json for one user)")
    if users_file is not None and output is None:
        raise InputError("--users-file needs --output FILE")
    users = read_id_lines(users_file) if users_file is not None else []

    from graphrec.serving.recommend import Recommender

    rec = Recommender(_store(ctx), version=model_version, bot_threshold=None if no_bot_filter else ("flagged" if bot_threshold is None else bot_threshold))
    if user_id is not None:
        suggestions = rec.recommend(user_id, k)
        data = {"user": user_id, "recommendations": [s.as_dict() for s in suggestions]}

        def table(d: dict[str, Any]) -> str:
            lines = [f"friend suggestions for {d['user']} (model {rec.version})"]
            for i, s in enumerate(d["recommendations"], 1):
                lines.append(f"{i:3d}. {s['user']:>10s}  score {s['score']:7.3f}  {'; '.join(s['reasons'])}")
            return "\n".join(lines if d["recommendations"] else lines + ["  (no suggestions)"])

        _emit(data, fmt, table)
        return
    assert output is not None
    failed = 0
    with atomic_output(output) as fh:
        for lineno, uid in users:
            try:
                recs = [s.as_dict() for s in rec.recommend(uid, k)]
                fh.write(json.dumps({"user": uid, "recommendations": recs}) + "\n")
            except GraphrecError as exc:
                failed += 1
                fh.write(json.dumps({"user": uid, "error": str(exc), "line": lineno}) + "\n")
    _emit({"users": len(users), "failed": failed, "output": str(output), "model": rec.version}, fmt)
    if failed:
        raise NotFoundError(f"{failed} of {len(users)} users could not be served (their lines in {output} say why)")


@cli.command("export")
@click.argument("what", type=click.Choice(["users", "friendships", "labels"]))
@click.option("--output", "-o", required=True, type=click.Path(path_type=Path), help="CSV file to write.")
@FORMAT
@click.pass_context
def export(ctx: click.Context, what: str, output: Path, fmt: str) -> None:
    """Export users, friendships or labels as CSV that `graphrec import` reads back."""
    from graphrec.store import exporters

    store = _store(ctx)
    writer = {"users": exporters.export_users, "friendships": exporters.export_friendships, "labels": exporters.export_labels}[what]
    with store.read() as conn:
        count = writer(conn, output)
    _emit({"exported": what, "rows": count, "output": str(output)}, fmt)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="graphrec")


if __name__ == "__main__":  # pragma: no cover
    main()
