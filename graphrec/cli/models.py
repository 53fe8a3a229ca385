"""Model commands: train and evaluate every task, and create or purge synthetic users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from graphrec.cli.app import FORMAT, cli, emit, engine_options, open_store, ray_options, threads_option


# -- link prediction --------------------------------------------------------------------------
@cli.group()
def train() -> None:
    """Train models (saved as versioned artifacts under GRAPHREC_HOME)."""


@train.command("linkpred")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed (splits, initialisation, sampling): the same seed and data give the same model.')
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1), help='Training epochs over the candidate lists.')
@click.option("--gnn-dim", default=16, show_default=True, type=click.IntRange(0), help="GCN embedding width (0: no GNN term).")
@threads_option()
@FORMAT
@click.pass_context
def train_linkpred(ctx: click.Context, seed: int, epochs: int, gnn_dim: int, threads: int, fmt: str) -> None:
    """Train the friend-recommendation link ranker on the store's current graph."""
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.linkpred.config import LinkPredConfig
    from graphrec.tasks.linkpred.train import LinkPredTask

    reg = train_and_register(open_store(ctx), LinkPredTask(), LinkPredConfig(seed=seed, epochs=epochs, gnn_dim=gnn_dim, threads=threads))
    training = reg.manifest["training"]
    emit({"model": "linkpred", "version": reg.version, "path": str(reg.artifact.path), "seconds": training["seconds"], "train_loss": training["train_loss"][-1], "data_revision": reg.manifest["data"]["revision"]}, fmt)


@train.command("bots")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed (folds, initialisation): the same seed and labels give the same model.')
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2), help="Cross-fitting folds (one model each).")
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1), help="Training epochs of each fold's network.")
@click.option("--target-precision", default=0.9, show_default=True, type=click.FloatRange(0.0, 1.0, min_open=True),
              help="The flagging threshold is the lowest whose out-of-fold precision reaches this.")
@click.option("--positive-label", default="bot", show_default=True, help="Label that marks a bot; any other label is a non-bot.")
@click.option("--augment", type=click.Choice(["vae", "gan", "copy"]), help="Add synthetic examples of the scarce class while training (vae, gan: class-conditional profiles; copy: the no-generator ablation).")
@click.option("--include-synthetic", is_flag=True, help="Also learn from labels of synthetic users in the store.")
@threads_option()
@engine_options
@FORMAT
@click.pass_context
def train_bots(ctx: click.Context, seed: int, folds: int, epochs: int, target_precision: float, positive_label: str, augment: str | None,
               include_synthetic: bool, threads: int, engine: str, ray_address: str | None, workers: int | None, fmt: str) -> None:
    """Train the bot detector (GNN node classification) from the labels in the store. With
    --engine ray each fold's network is fitted with Ray Train (DDP over sampled neighbourhoods)."""
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.bots.config import BotConfig
    from graphrec.tasks.registry import get_task

    cfg = BotConfig(seed=seed, folds=folds, epochs=epochs, target_precision=target_precision, positive_label=positive_label,
                    augment=augment, include_synthetic=include_synthetic, threads=threads)
    options = ray_options(engine, ray_address, workers)
    if options is not None:
        from graphrec.distributed.training import train_bots_on_ray

        reg = train_bots_on_ray(open_store(ctx), cfg, options=options)
    else:
        reg = train_and_register(open_store(ctx), get_task("bots"), cfg)
    m = reg.manifest
    fallback = not str(m["threshold_rule"]).startswith("precision")
    warning = (f"the threshold fell back to the F1-optimal one: target precision {target_precision:g} is not reachable out of fold "
               "(too few or inseparable labels?)") if fallback else None
    if warning and fmt != "json":
        click.echo(f"warning: {warning}", err=True)
    emit({"model": "bot", "version": reg.version, "path": str(reg.artifact.path), "seconds": m["training_seconds"], "threshold": m["threshold"],
           "threshold_rule": m["threshold_rule"], "threshold_fallback": fallback, "warning": warning, "smoothing": m.get("smoothing"),
           "out_of_fold": m["metrics"]["out_of_fold"], "augment": m["metrics"].get("augment"), "data_revision": m["data"]["revision"]}, fmt)


@train.command("siamese")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed (pairs, initialisation, negatives).')
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1), help='Training epochs over the positive pairs.')
@click.option("--loss", type=click.Choice(["in_batch", "contrastive"]), default="in_batch", show_default=True, help="Training loss: in_batch (softmax over the batch's other users) or contrastive (margin on random negatives).")
@threads_option()
@FORMAT
@click.pass_context
def train_siamese(ctx: click.Context, seed: int, epochs: int, loss: str, threads: int, fmt: str) -> None:
    """Train the Siamese profile encoder and index every user's embedding in FAISS."""
    from graphrec.tasks.base import train_and_register
    from graphrec.tasks.siamese.config import SiameseConfig
    from graphrec.tasks.siamese.train import SiameseTask

    reg = train_and_register(open_store(ctx), SiameseTask(), SiameseConfig(seed=seed, epochs=epochs, loss=loss, threads=threads))
    t = reg.manifest["training"]
    emit({"model": "siamese", "version": reg.version, "path": str(reg.artifact.path), "seconds": t["seconds"], "train_loss": t["train_loss"][-1],
           "users_indexed": reg.manifest["data"]["users"]}, fmt)


@train.command("anomaly")
@click.option("--kind", type=click.Choice(["context", "dominant", "vanilla", "denoising", "sparse"]), default="context", show_default=True,
              help="Detector: context (profile vs friends + graph structure; the default by measurement), the DOMINANT graph "
                   "autoencoder, or a feature autoencoder.")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed (initialisation, sampling).')
@click.option("--contamination", default=0.05, show_default=True, type=click.FloatRange(0.0, 0.5, min_open=True, max_open=True),
              help="Expected share of anomalous users: the flagging threshold is this upper quantile of the training scores.")
@click.option("--tied", is_flag=True, help="Tie decoder weights to the encoder's (autoencoder kinds).")
@threads_option()
@FORMAT
@click.pass_context
def train_anomaly(ctx: click.Context, kind: str, seed: int, contamination: float, tied: bool, threads: int, fmt: str) -> None:
    """Train the unsupervised anomaly detector on the store's current users and graph."""
    from graphrec.tasks.anomaly.config import AnomalyConfig
    from graphrec.tasks.anomaly.train import AnomalyTask
    from graphrec.tasks.base import train_and_register

    config = AnomalyConfig(seed=seed, detector=kind, contamination=contamination, tied=tied, threads=threads)
    reg = train_and_register(open_store(ctx), AnomalyTask(), config)
    m = reg.manifest
    emit({"model": "anomaly", "detector": m["detector"], "version": reg.version, "path": str(reg.artifact.path), **m["metrics"],
           "data_revision": m["data"]["revision"]}, fmt)


@cli.group("eval")
def eval_() -> None:
    """Evaluate models against baselines measured in the same run."""


def _seed_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        seeds = [int(s) for s in value.split(",") if s.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not seeds:
        raise click.BadParameter("give at least one seed")
    return seeds


def _cell(d: dict[str, Any], part: str, name: str, metric: str, width: int) -> str:
    """One figure of ``graphrec eval linkpred``'s table: the value, or mean±std over seeds."""
    value = d[part][name][metric]
    if "std" not in d:
        return f"{value:{width}.3f}"
    std = d["std"][part][name][metric]
    return f"{value:.3f}±{std:.3f}".rjust(width)


@eval_.command("linkpred")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed of the held-out split and the model (ignored with --seeds).')
@click.option("--seeds", callback=_seed_list, help="Comma-separated seeds (e.g. 0,1,2): the protocol once per seed, every figure as mean ± std; overrides --seed.")
@click.option("--test-fraction", default=0.1, show_default=True, type=click.FloatRange(0.01, 0.5), help='Share of friendships held out for testing.')
@click.option("--max-users", default=1000, show_default=True, type=click.IntRange(1), help='At most this many users with held-out friends are ranked.')
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1), help='Training epochs of the evaluated model.')
@click.option("--gnn-dim", default=16, show_default=True, type=click.IntRange(0), help='GCN embedding width of the evaluated model (0: no GNN term).')
@click.option("--hard-negatives", default=100, show_default=True, type=click.IntRange(0),
              help="Hard negatives per user (top CN, RA and PPR candidates, HeaRT protocol); 0: skip that ranking.")
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write this evaluation's report section (plots against the baselines) to DIR/index.html.")
@threads_option()
@FORMAT
@click.pass_context
def eval_linkpred(ctx: click.Context, seed: int, seeds: list[int] | None, test_fraction: float, max_users: int, epochs: int, gnn_dim: int,
                  hard_negatives: int, include_synthetic: bool, report_dir: Path | None, threads: int, fmt: str) -> None:
    """Hold out friendships, rank every non-friend (Recall@K, MRR) and rank each held-out friend
    among the user's hard negatives (MRR, Hits@K); the model beside CN, AA, RA and PPR."""
    from graphrec.reports import run_evaluation

    data = run_evaluation("linkpred", open_store(ctx), report_dir=report_dir, seed=seed, seeds=seeds, test_fraction=test_fraction,
                          max_users=max_users, epochs=epochs, gnn_dim=gnn_dim, hard_negatives=hard_negatives, threads=threads,
                          include_synthetic=include_synthetic)

    def table(d: dict[str, Any]) -> str:
        w = 13 if "std" in d else 9
        lines = [f"{'method':24s} {'recall@20':>{w}s} {'recall@50':>{w}s} {'mrr':>{w}s}"]
        for name in d["metrics"]:
            lines.append(f"{name:24s} " + " ".join(_cell(d, "metrics", name, m, w) for m in ("recall@20", "recall@50", "mrr")))
        if d.get("hard_negatives"):
            lines.append(f"hard negatives ({d['params']['hard_negatives']} per user: top CN, RA and PPR candidates)")
            lines.append(f"{'method':24s} " + " ".join(f"{m:>{w}s}" for m in ("mrr", "hits@1", "hits@10", "hits@20")))
            for name in d["hard_negatives"]:
                lines.append(f"{name:24s} " + " ".join(_cell(d, "hard_negatives", name, m, w) for m in ("mrr", "hits@1", "hits@10", "hits@20")))
        p = d["params"]
        runs = f"seed={p['seed']}" if "seed" in p else f"seeds={','.join(map(str, p['seeds']))} (mean±std)"
        lines.append(f"users={p['max_users']} test_edges={p['test_edges']} {runs}")
        if "report" in d:
            lines.append(f"report: {d['report']}")
        return "\n".join(lines)

    emit(data, fmt, table)


@eval_.command("bots")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed of the split and the models.')
@click.option("--test-fraction", default=0.3, show_default=True, type=click.FloatRange(0.05, 0.9), help='Share of the labelled users held out for testing (stratified).')
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2), help='Cross-fitting folds of the evaluated model.')
@click.option("--epochs", default=100, show_default=True, type=click.IntRange(1), help="Training epochs of each fold's network.")
@click.option("--positive-label", default="bot", show_default=True, help='Label that marks a bot; any other label is a non-bot.')
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write this evaluation's report section (plots against the baselines) to DIR/index.html.")
@threads_option()
@FORMAT
@click.pass_context
def eval_bots(ctx: click.Context, seed: int, test_fraction: float, folds: int, epochs: int, positive_label: str, include_synthetic: bool,
              report_dir: Path | None, threads: int, fmt: str) -> None:
    """Stratified split of the labelled users; the model beside a feature-only classifier,
    gradient-boosted trees on profile, structure and 1-2-hop neighbour means, label propagation
    and personalized PageRank, trained on the same labels in the same run."""
    from graphrec.reports import run_evaluation

    result = run_evaluation("bots", open_store(ctx), report_dir=report_dir, seed=seed, test_fraction=test_fraction, folds=folds,
                            epochs=epochs, positive_label=positive_label, include_synthetic=include_synthetic, threads=threads)

    def table(d: dict[str, Any]) -> str:
        keys = ["roc_auc", "average_precision", "f1"]
        pk = next(k for k in d["metrics"]["model"] if k.startswith("precision@"))
        lines = [f"{'method':24s} {'roc_auc':>8s} {'avg_prec':>8s} {'f1':>6s} {pk:>14s}"]
        for name, m in d["metrics"].items():
            lines.append(f"{name:24s} {m[keys[0]]:8.4f} {m[keys[1]]:8.4f} {m[keys[2]]:6.3f} {m[pk]:14.3f}")
        lines.append(f"train={d['n_train']} test={d['n_test']} (bots {d['test_bots']}) seed={d['seed']} threshold={d['threshold']:.3f} post-processing={d['smoothing']}")
        if "report" in d:
            lines.append(f"report: {d['report']}")
        return "\n".join(lines)

    emit(result, fmt, table)


@eval_.command("siamese")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed of the hidden users and the model.')
@click.option("--hidden-fraction", default=0.1, show_default=True, type=click.FloatRange(0.01, 0.5), help='Share of users whose friendships are all hidden (the cold-start users).')
@click.option("--epochs", default=12, show_default=True, type=click.IntRange(1), help='Training epochs of the evaluated encoder.')
@click.option("--loss", type=click.Choice(["in_batch", "contrastive"]), default="in_batch", show_default=True, help="Training loss: in_batch (softmax over the batch's other users) or contrastive (margin on random negatives).")
@click.option("--include-synthetic", is_flag=True, help="Count synthetic users in the evaluation (excluded by default).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write this evaluation's report section (plots against the baselines) to DIR/index.html.")
@threads_option()
@FORMAT
@click.pass_context
def eval_siamese(ctx: click.Context, seed: int, hidden_fraction: float, epochs: int, loss: str, include_synthetic: bool,
                 report_dir: Path | None, threads: int, fmt: str) -> None:
    """Cold start: hide every friendship of some users, rank all users from the profile alone;
    the model beside popularity and raw profile cosine (and circle precision@10)."""
    from graphrec.reports import run_evaluation
    from graphrec.tasks.siamese.config import SiameseConfig

    result = run_evaluation("siamese", open_store(ctx), report_dir=report_dir,
                            config=SiameseConfig(seed=seed, epochs=epochs, loss=loss, threads=threads), hidden_fraction=hidden_fraction,
                            include_synthetic=include_synthetic)

    def table(d: dict[str, Any]) -> str:
        lines = [f"{'method':16s} {'recall@10':>9s} {'recall@50':>9s} {'mrr':>7s}"]
        for name, m in d["metrics"].items():
            if name != "circles p@10":
                lines.append(f"{name:16s} {m['recall@10']:9.3f} {m['recall@50']:9.3f} {m['mrr']:7.3f}")
        if "circles p@10" in d["metrics"]:
            c = d["metrics"]["circles p@10"]
            lines.append(f"circle precision@10: siamese {c['siamese']:.3f}, profile cosine {c['profile cosine']:.3f}")
        lines.append(f"hidden users={d['hidden_users']} evaluated={d['evaluated_users']} seed={d['seed']}")
        if "report" in d:
            lines.append(f"report: {d['report']}")
        return "\n".join(lines)

    emit(result, fmt, table)


@cli.command("report")
@click.option("--output", "output", type=click.Path(file_okay=False, path_type=Path), default=Path("report"), show_default=True,
              help="Folder for index.html (created when missing).")
@click.option("--section", "sections", multiple=True, help="Only this section (repeatable): linkpred, bots, anomaly, embeddings, synth, "
              "generative, training or store.")
@FORMAT
@click.pass_context
def report_cmd(ctx: click.Context, output: Path, sections: tuple[str, ...], fmt: str) -> None:
    """Write one self-contained HTML page (inline plots, no network fetches) of the store and its
    models: recommendation recall against the heuristics, bot ROC/PR, calibration and the latest
    nightly run, anomalies, embeddings, synthetic users, generative models, training curves and the
    store. Sections without data say what is missing. 'graphrec serve' answers the latest report at
    /reports/latest."""
    from graphrec.reports import build_report

    result = build_report(open_store(ctx), output, sections=list(sections) or None)

    def table(d: dict[str, Any]) -> str:
        lines = [f"report: {d['path']} ({d['bytes'] / 1024:.0f} KiB, {d['seconds']:.1f} s)"]
        for name, state in d["sections"].items():
            lines.append(f"  {name:11s} {state}")
        return "\n".join(lines)

    emit(result.as_dict(), fmt, table)


@cli.group("synth", invoke_without_command=True)
@click.option("--model", "model", type=click.Choice(["vae", "gan"]), default="vae", show_default=True, help="Profile generator.")
@click.option("--n", "n", type=click.IntRange(1), help="How many synthetic users to create.")
@click.option("--seed", default=0, show_default=True, type=int, help='Random seed of the generator and of the drawn users and friendships.')
@click.option("--label", help="Give every synthetic user this label (e.g. bot); profiles come from a class-conditional model.")
@click.option("--epochs", type=click.IntRange(1), help="Generator training epochs [default: the model's].")
@click.option("--holdout", default=0.2, show_default=True, type=click.FloatRange(0.0, 0.5),
              help="Share of real users the generator does not see: the privacy gate's baseline (0: no gate).")
@click.option("--force", is_flag=True, help="Write a batch the privacy gate refuses (its figures are recorded as forced).")
@threads_option()
@FORMAT
@click.pass_context
def synth(ctx: click.Context, model: str, n: int | None, seed: int, label: str | None, epochs: int | None, holdout: float, force: bool,
          threads: int, fmt: str) -> None:
    """Create N synthetic users, always flagged is_synthetic: profiles from a VAE or GAN trained on
    the real users, friendships copied from the neighbourhood of a similar real user, all in one transaction.
    Synthetic users are never recommended and are excluded from training and evaluation.

    Privacy gate: a batch whose rows copy the generator's training users more than held-out real
    users do (exact copies, distance to the closest record, a membership-inference attack) is
    refused with exit code 4 and nothing written, unless --force.

    'graphrec synth purge' removes every synthetic user and friendship."""
    if ctx.invoked_subcommand is not None:
        return
    if n is None:
        raise click.UsageError("give --n N (or the purge subcommand)")
    from graphrec.tasks.synth.config import SynthConfig
    from graphrec.tasks.synth.synthesize import synthesize

    report = synthesize(open_store(ctx), SynthConfig(model=model, n=n, seed=seed, label=label, epochs=epochs, threads=threads,
                                                     holdout=holdout, force=force))
    emit(report.as_dict(), fmt)


@synth.command("purge")
@click.option("--yes", "-y", is_flag=True, help="Do not ask: remove them (required when stdin is not a terminal).")
@click.option("--dry-run", is_flag=True, help="Only print what would be removed.")
@FORMAT
@click.pass_context
def synth_purge(ctx: click.Context, yes: bool, dry_run: bool, fmt: str) -> None:
    """Delete every synthetic user with their friendships, labels and scores (one transaction).
    Says what would be removed first and asks on a terminal; elsewhere needs --yes."""
    from graphrec.errors import InputError
    from graphrec.tasks.synth.purge import PurgePreview, purge_synthetic

    def confirm(preview: PurgePreview) -> bool:
        if not stdin_is_terminal():
            raise InputError(f"synth purge would remove {preview.describe()}: pass --yes to confirm (stdin is not a terminal), "
                             "or --dry-run to only look")
        return click.confirm(f"remove {preview.describe()}?", default=False, err=True)

    emit(purge_synthetic(open_store(ctx), dry_run=dry_run, confirm=None if yes else confirm).as_dict(), fmt)


def stdin_is_terminal() -> bool:
    """Whether a prompt can be answered (stdin is a terminal)."""
    import sys

    return sys.stdin.isatty()


# -- the served-model registry ------------------------------------------------------------------
@cli.group("models")
def models_group() -> None:
    """See which model versions are saved and which one serves; promote a version or roll back
    a bad retrain (GRAPHREC_HOME/models/KIND/VERSION, LATEST). KIND is bot, linkpred, siamese,
    anomaly or synth (task names such as bots are accepted)."""


@models_group.command("list")
@click.argument("kind", required=False)
@FORMAT
@click.pass_context
def models_list(ctx: click.Context, kind: str | None, fmt: str) -> None:
    """Every saved version of KIND (default: every kind), oldest first: data revision, key
    metric, when it was created; '*' marks the version that serves."""
    from graphrec.jobs.models import list_models

    def table(d: dict[str, Any]) -> str:
        if not d["models"]:
            return "no saved models: train one with `graphrec train ...`"
        lines = [f"  {'kind':9s} {'version':24s} {'data rev':>8s} {'metric':>14s} {'value':>9s}  created"]
        for r in d["models"]:
            value = "-" if r["value"] is None else f"{r['value']:.4g}"
            mark = "*" if r["serving"] else " "
            note = "" if r["recorded"] else "  (no model_runs row: cannot serve)"
            rev = "-" if r["data_revision"] is None else str(r["data_revision"])
            lines.append(f"{mark} {r['kind']:9s} {r['version']:24s} {rev:>8s} {r['metric'] or '-':>14s} {value:>9s}  "
                         f"{(r['created_at'] or '-')[:19]}{note}")
        if d["store_revision"] is not None:
            lines.append(f"store revision now: {d['store_revision']}  (* serves)")
        return "\n".join(lines)

    emit(list_models(open_store(ctx), kind).as_dict(), fmt, table)


@models_group.command("show")
@click.argument("kind")
@click.argument("version", required=False)
@FORMAT
@click.pass_context
def models_show(ctx: click.Context, kind: str, version: str | None, fmt: str) -> None:
    """Summary of one version's manifest (default: the serving one): data it was trained on,
    parameters, feature columns, metrics."""
    from graphrec.jobs.models import show_model

    emit(show_model(open_store(ctx), kind, version), fmt)


@models_group.command("promote")
@click.argument("kind")
@click.argument("version")
@FORMAT
@click.pass_context
def models_promote(ctx: click.Context, kind: str, version: str, fmt: str) -> None:
    """Serve VERSION of KIND from now on (atomic switch of LATEST). The version must have a
    recorded training run."""
    from graphrec.jobs.models import promote

    emit(promote(open_store(ctx), kind, version).as_dict(), fmt)


@models_group.command("rollback")
@click.argument("kind")
@FORMAT
@click.pass_context
def models_rollback(ctx: click.Context, kind: str, fmt: str) -> None:
    """Serve the version of KIND that served before the current one (undo a bad retrain);
    repeat to go further back."""
    from graphrec.jobs.models import rollback

    emit(rollback(open_store(ctx), kind).as_dict(), fmt)
