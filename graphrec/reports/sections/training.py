"""Report section: training curves of every served model -- the loss of each epoch as training
recorded it in the model's manifest -- and the validation figure recorded with it, where there
is one.

Where each model keeps its per-epoch loss (:func:`loss_curves`):

* ``linkpred`` and ``siamese``: ``training.train_loss`` of the manifest;
* ``bot``: ``metrics.train_loss_by_fold`` (one curve per cross-fitting fold; the class-balanced
  cross-entropy on the label trick's target half);
* ``anomaly``: ``metrics.train_loss`` (the detector's reconstruction loss);
* ``synth``: ``metrics.history`` (VAE: loss/recon/kl; GAN: d_loss/g_loss and the discriminator's
  mean probabilities d_real/d_fake, drawn on their own [0, 1] axis).

Models saved before a version recorded these have none; the section says which, and how to
retrain them. Nothing is trained here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from graphrec.reports.html import Block, Plot, Section, Table, Text

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.reports.context import ReportContext

TITLE = "Training curves"

#: the served model kinds, in page order, with a readable name and the command that trains them
MODELS: tuple[tuple[str, str, str], ...] = (
    ("linkpred", "Friend recommendation (link ranker)", "graphrec train linkpred"),
    ("siamese", "Siamese profile encoder", "graphrec train siamese"),
    ("bot", "Bot detector (GNN)", "graphrec train bots"),
    ("anomaly", "Anomaly detector", "graphrec train anomaly"),
    ("synth", "Synthetic-user generator", "graphrec synth --n 100"),
)
#: per-epoch series that are probabilities (a GAN discriminator's mean output), not losses
PROBABILITY_KEYS = ("d_real", "d_fake")
#: per-epoch series that are bookkeeping, not something training minimises
IGNORED_KEYS = ("seconds", "kl_weight")


def _series(value: Any) -> list[float] | None:
    """``value`` as a list of floats when it is a non-empty list of numbers (None entries dropped:
    JSON has no NaN), else None."""
    if not isinstance(value, list) or not value:
        return None
    out = [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return out or None


#: the order series of a generative model's history are drawn in (the total loss first, in the model's colour)
ORDER = ("loss", "recon", "kl", "d_loss", "g_loss", "d_real", "d_fake")


def history_curves(history: dict[str, Any]) -> dict[str, list[float]]:
    """The drawable series of a ``generative.fit`` history (bookkeeping left out), in :data:`ORDER`."""
    rank = {k: i for i, k in enumerate(ORDER)}
    keys = sorted((k for k in history if k not in IGNORED_KEYS), key=lambda k: (rank.get(k, len(ORDER)), k))
    return {k: s for k in keys if (s := _series(history[k]))}


def loss_curves(kind: str, manifest: dict[str, Any]) -> dict[str, list[float]]:
    """The per-epoch series a served model of ``kind`` recorded (see the module docs), by name;
    empty when it recorded none."""
    metrics = manifest.get("metrics") or {}
    training = manifest.get("training") or {}
    out: dict[str, list[float]] = {}
    if kind == "bot":
        for i, fold in enumerate(metrics.get("train_loss_by_fold") or []):
            s = _series(fold)
            if s:
                out[f"fold {i + 1}"] = s
        return out
    if kind == "synth":
        return history_curves(metrics.get("history") or {})
    for source in (training, metrics):
        s = _series(source.get("train_loss"))
        if s:
            return {"train loss": s}
    return out


def validation_figure(kind: str, manifest: dict[str, Any]) -> str:
    """The held-out figure recorded with the model (one line), or why there is none."""
    metrics = manifest.get("metrics") or {}

    def num(*path: str) -> float | None:
        node: Any = metrics
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None

    if kind == "bot":
        auc, ap = num("out_of_fold", "roc_auc"), num("out_of_fold", "average_precision")
        if auc is not None:
            return f"out-of-fold ROC-AUC {auc:.3f}" + (f", average precision {ap:.3f}" if ap is not None else "")
    if kind == "synth":
        c2st, ks = num("realism", "c2st_auc"), num("realism", "degree_ks")
        if c2st is not None or ks is not None:
            parts = ([f"profile C2ST AUC vs held-out users {c2st:.3f} (0.5 = indistinguishable)"] if c2st is not None else []) + (
                [f"degree KS {ks:.3f}"] if ks is not None else [])
            return ", ".join(parts)
    if kind == "anomaly":
        return "none (unsupervised: no labels to validate against)"
    for key in ("recall@20", "recall@10", "mrr"):
        v = num(key)
        if v is not None:
            return f"{key} {v:.3f}"
    return "none recorded with the model (see the evaluation sections)"


def siamese_mining_epochs(manifest: dict[str, Any], epochs: int) -> list[int]:
    """The (1-based) epochs that start with a fresh round of hard negatives (every
    ``hard_every`` epochs after the first, as :mod:`graphrec.tasks.siamese.train` mines them):
    the loss jumps there because the task gets harder, not because training diverges."""
    every = ((manifest.get("training") or {}).get("config") or {}).get("hard_every")
    if not isinstance(every, int) or every <= 0:
        return []
    return [e + 1 for e in range(every, epochs, every)]


def curves_plot(curves: dict[str, list[float]], title: str, *, folds: bool = False, width: float = 6.4, height: float = 3.4,
                events: list[int] | None = None, event_label: str = "") -> str:
    """The per-epoch ``curves`` as a PNG data URI: losses on an axis labelled "loss"; the
    discriminator probabilities (:data:`PROBABILITY_KEYS`) on a separate axis below, labelled
    "D(x) probability" and fixed to [0, 1]. With ``folds`` the curves are folds of one model:
    thin lines in one colour and their mean in bold. ``events``: epochs marked with a dotted
    vertical line (``event_label``). Log y when a loss spans more than a factor of 20."""
    import math

    import numpy as np

    from graphrec.reports.style import THRESHOLD_COLOUR, figure, png_data_uri, series_style

    losses = {k: v for k, v in curves.items() if k not in PROBABILITY_KEYS}
    probs = {k: v for k, v in curves.items() if k in PROBABILITY_KEYS}
    panels = [p for p in ((losses, "loss"), (probs, "D(x) probability")) if p[0]]
    with figure(width, height if len(panels) == 1 else height * 1.6, nrows=len(panels)) as (fig, axes):
        for ax, (group, ylabel) in zip(axes, panels):
            if folds:
                colour = series_style(0)["color"]
                for k, v in group.items():
                    ax.plot(range(1, len(v) + 1), v, color=colour, alpha=0.3, linewidth=0.8)
                n = min(len(v) for v in group.values())
                mean = np.mean([v[:n] for v in group.values()], axis=0)
                ax.plot(range(1, n + 1), mean, color=colour, linewidth=2.0, label=f"mean of {len(group)} folds (thin: each fold)")
            else:
                offset = 0 if ylabel == "loss" else len(losses)
                for i, (k, v) in enumerate(group.items()):
                    ax.plot(range(1, len(v) + 1), v, label=k, linewidth=1.4, marker="o" if len(v) <= 20 else None,
                            markersize=3, **series_style(i + offset))
            if ylabel == "loss":
                pos = [x for v in group.values() for x in v if x > 0]
                if pos and min(x for v in group.values() for x in v) > 0 and max(pos) / min(pos) > 20:
                    from matplotlib.ticker import FuncFormatter, NullFormatter

                    ax.set_yscale("log")
                    plain = FuncFormatter(lambda v, _: f"{v:g}")  # 0.02 rather than 2x10^-2
                    ax.yaxis.set_major_formatter(plain)
                    # within about a decade the minor ticks need labels; across several they crowd
                    some = FuncFormatter(lambda v, _: f"{v:g}" if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 3, 5) else "")
                    ax.yaxis.set_minor_formatter(some if max(pos) / min(pos) <= 30 else NullFormatter())
                    ylabel = "loss (log scale)"
            else:
                ax.set_ylim(0.0, 1.0)
                ax.axhline(0.5, color=THRESHOLD_COLOUR, linewidth=0.9, linestyle=":", label="0.5: D cannot tell real from generated")
            for j, e in enumerate(events or []):
                ax.axvline(e, color=THRESHOLD_COLOUR, linestyle=":", linewidth=1.0, label=event_label if j == 0 else None)
            ax.set_ylabel(ylabel)
            ax.legend(loc="best")
        axes[-1].set_xlabel("epoch")
        axes[0].set_title(title)
        return png_data_uri(fig)


def build(ctx: "ReportContext") -> Section:
    """One plot per served model with a recorded loss history, a table of every model's final
    loss and validation figure, and which models record none (see the module docs)."""
    blocks: list[Block] = []
    rows: list[list[Any]] = []
    no_curve: list[str] = []
    unserved: list[str] = []
    for kind, name, command in MODELS:
        manifest = ctx.manifest(kind)
        if manifest is None:
            unserved.append(f"{name} (`{command}`)")
            continue
        curves = loss_curves(kind, manifest)
        version = str(manifest.get("version", ""))
        if curves:
            folds = kind == "bot"
            epochs = max(len(v) for v in curves.values())
            loss_keys = [k for k in curves if k not in PROBABILITY_KEYS]
            final = (sum(curves[k][-1] for k in loss_keys) / len(loss_keys)) if folds else (curves[loss_keys[0]][-1] if loss_keys else None)
            caption = {
                "bot": "Each fold's class-balanced cross-entropy on its held-back half of the labels; a curve still falling at the end would gain from more epochs, one rising late would be overfitting.",
                "synth": "Losses above; for a GAN the discriminator's mean probability on real (d_real) and generated (d_fake) profiles below: both near 0.5 means the discriminator cannot tell them apart.",
            }.get(kind, "The training loss per epoch: it should fall and flatten; a curve still falling at the end would gain from more epochs.")
            events = siamese_mining_epochs(manifest, epochs) if kind == "siamese" else []
            if events:
                caption += " Dotted lines: epochs that start with newly mined hard negatives, where the loss jumps because the task gets harder."
            blocks.append(Plot(curves_plot(curves, f"{name}: loss per epoch", folds=folds, events=events, event_label="hard negatives mined"),
                               alt=f"Line chart of the {name}'s training loss over {epochs} epochs (version {version}).", caption=caption))
            rows.append([name, version, epochs, final, validation_figure(kind, manifest)])
        else:
            no_curve.append(f"{name} (version {version}; retrain with `{command}` to record it)")
            rows.append([name, version, "-", None, validation_figure(kind, manifest)])
    if rows:
        blocks.insert(0, Table(["model", "served version", "epochs", "final loss", "validation figure recorded with the model"], rows,
                               caption="Served models: last epoch's training loss (bot: mean over folds) and the held-out figure training recorded", digits=4))
    if no_curve:
        blocks.append(Text("Served models that record no per-epoch loss: " + "; ".join(no_curve) + "."))
    missing = None
    if unserved:
        missing = "no served model: " + ", ".join(unserved)
    return Section("training", TITLE, blocks, missing=missing)
