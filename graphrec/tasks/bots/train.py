"""Training the bot detector from a few labelled accounts (:class:`BotTask`).

Pipeline (all seeded):

1. Node inputs ``x = [standardised profile features ; standardised structural statistics ;
   label-propagation signals]`` (:mod:`graphrec.tasks.bots.signals`, :func:`~graphrec.tasks.bots.model.graph_inputs`).
2. Cross-fitting: the labelled users are split into ``folds`` stratified folds
   (:func:`graphrec.core.splits.stratified_folds`). For each fold a
   :class:`~graphrec.nn.bot_gnn.BotGNN` is trained on the other folds with the *label trick*: each
   epoch a random half of the fold's training labels feeds the label-propagation inputs and the
   loss (class-balanced binary cross-entropy) is taken on the other half, so the model learns to
   use propagated labels without ever seeing a node's own label.
3. Each fold model scores its held-out fold (out-of-fold logits, given that fold's training labels
   as inputs). Platt scaling (Platt 1999) fitted on the out-of-fold logits turns logits into
   calibrated probabilities, and the decision threshold is the lowest one whose out-of-fold
   precision reaches ``target_precision`` (else the F1-optimal one; the manifest says which).
   The out-of-fold logits are also post-processed each way of :data:`~graphrec.tasks.bots.config.SMOOTHINGS`
   (none, or Correct and Smooth, Huang et al., ICLR 2021, with the random-walk or the symmetric
   operator, :func:`graphrec.tasks.bots.signals.correct_and_smooth`, from that fold's training
   labels); with ``smooth="auto"`` random-walk C&S is kept unless another is reliably better out
   of fold (:func:`choose_smoothing`; recorded as ``smoothing``): which one helps depends on how positives sit in the graph, so it is measured on
   each graph rather than fixed.
4. Scoring averages the fold models' logits, each given *all* labels as inputs, post-processes
   them the chosen way from the same labels, then calibrates.

With few labels, cross-fitting uses every label for training, calibration and the threshold
without scoring any label with a model that trained on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.metrics import classification_metrics
from graphrec.core.splits import stratified_folds
from graphrec.progress import progress
from graphrec.tasks.base import ProfileSamplerFactory, Task
from graphrec.tasks.bots.config import SMOOTHINGS, BotConfig
from graphrec.tasks.bots.model import (
    KIND,
    BotModel,
    GraphInputs,
    LabelSet,
    graph_inputs,
    graph_labels,
    new_network,
    post_process,
)
from graphrec.threads import configure_torch

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from graphrec.core.graph import Graph
    from graphrec.nn.bot_gnn import BotGNN
    from graphrec.store.snapshot import Snapshot
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)

#: Labels of each class that training needs: cross-fitting runs at least two folds, and each
#: fold holds out at least one label of each class.
MIN_LABELS_PER_CLASS = 2


def check_labels(is_bot: np.ndarray, *, hint: str = "") -> tuple[int, int]:
    """``(bots, non-bots)`` among the (real) labels ``is_bot``; ``ValueError`` when either is
    below :data:`MIN_LABELS_PER_CLASS` (``hint`` says what to do about it)."""
    y = np.asarray(is_bot, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if min(n_pos, n_neg) < MIN_LABELS_PER_CLASS:
        raise ValueError(f"need at least {MIN_LABELS_PER_CLASS} labelled bots and {MIN_LABELS_PER_CLASS} labelled non-bots, "
                         f"got {n_pos} and {n_neg}{hint}")
    return n_pos, n_neg


class BotTask(Task[BotConfig, BotModel]):
    """Bot detection: node classification from a few labelled accounts (see the module docs).

    ``profile_generators`` fits the class-conditional profile generator that ``--augment vae|gan``
    draws synthetic examples from (the registry passes the synthetic-users task's; the ``copy``
    ablation needs none)."""

    name = "bots"
    kind = KIND
    config_type = BotConfig
    model_type = BotModel
    scores_users = True

    def __init__(self, profile_generators: ProfileSamplerFactory | None = None, fold_trainer: "FoldTrainer | None" = None) -> None:
        self.profile_generators = profile_generators
        self.fold_trainer = fold_trainer

    def snapshot(self, store: "GraphStore", config: BotConfig) -> "Snapshot":
        """Every user, synthetic ones included (they are part of the graph the model propagates
        labels over); their labels are left out by :meth:`fit` unless ``include_synthetic``."""
        return store.snapshot()

    def fit(self, graph: "Graph", config: BotConfig) -> BotModel:
        """Train on the labelled users of ``graph`` (``graph.labels``): ``config.positive_label``
        marks a bot, any other label a non-bot."""
        labels = graph_labels(graph, config.positive_label, include_synthetic=config.include_synthetic)
        hint = " (import labels with `graphrec import labels`)"
        if not config.include_synthetic:
            on_synthetic = graph_labels(graph, config.positive_label, include_synthetic=True).nodes.size - labels.nodes.size
            if on_synthetic:
                hint = (f"; {on_synthetic} more labels are on synthetic users (such as the demo bots of "
                        f"`graphrec import ego-facebook --with-demo-bots`): add --include-synthetic to learn from them")
        check_labels(labels.is_bot, hint=hint)
        train_graph, n_real, added = graph, None, 0
        threads = configure_torch(config.threads)
        if config.augment is not None:
            from graphrec.tasks.bots.augment import augment_training_graph

            aug = augment_training_graph(graph, labels.nodes, labels.is_bot, kind=config.augment, seed=config.seed,
                                         threads=threads, generators=self.profile_generators)
            train_graph, labels, n_real, added = aug.graph, LabelSet(aug.labelled, aug.is_bot), aug.n_real, aug.added
            log.info("augmentation (%s): %d synthetic %s examples", config.augment, added, aug.scarce_class)
        model = train_bot_detector(train_graph, labels.nodes, labels.is_bot, config, n_real=n_real, fold_trainer=self.fold_trainer)
        model.metrics["augment"] = {"model": config.augment, "synthetic_examples": added}
        return model


#: the attribute of a fold's trained network holding its per-epoch training loss (a fold trainer
#: that does not set it, such as the Ray one, leaves that fold's curve out of the metrics)
LOSS_HISTORY = "train_loss_history"

#: fits one fold's network: ``(config, inputs, adjacency, labelled nodes, is_bot, seed) -> BotGNN``
FoldTrainer = Callable[[BotConfig, GraphInputs, Any, np.ndarray, np.ndarray, int], "BotGNN"]


def positive_weight(y: np.ndarray) -> "torch.Tensor":
    """The class-balancing ``pos_weight`` of the binary cross-entropy for targets ``y`` (bool):
    negatives / positives (the positives' count floored at 1)."""
    import torch

    pos = float(np.count_nonzero(y))
    return torch.tensor((y.size - pos) / max(pos, 1.0))


def half_split(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The label trick's split of one epoch: random halves of each class (positions into ``y``),
    (label inputs, loss targets). A class with one example goes to the targets."""
    inp, tgt = [], []
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        k = idx.size // 2
        inp.append(idx[:k])
        tgt.append(idx[k:])
    return np.concatenate(inp), np.concatenate(tgt)


def _train_fold(config: BotConfig, inputs: GraphInputs, adj: "torch.Tensor", nodes: np.ndarray, y: np.ndarray, seed: int) -> "BotGNN":
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    in_dim = inputs.base.shape[1] + inputs.propagator.width
    model = new_network(config, in_dim)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    base = torch.from_numpy(inputs.base)
    losses: list[float] = []
    model.train()
    for _ in range(config.epochs):
        inp, tgt = half_split(y, rng)
        lab = torch.from_numpy(inputs.propagator(nodes[inp][y[inp]], nodes[inp][~y[inp]]))
        logits = model(torch.cat([base, lab], dim=1), adj)
        target = torch.from_numpy(y[tgt].astype(np.float32))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[torch.from_numpy(nodes[tgt])], target,
                                                                    pos_weight=positive_weight(y[tgt]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    setattr(model, LOSS_HISTORY, losses)  # read by train_bot_detector into the model's metrics
    return model


def fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling ``p = sigmoid(a * logit + b)`` by (lightly regularised) logistic regression."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=100.0)
    lr.fit(logits.reshape(-1, 1).astype(np.float64), y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def choose_threshold(prob: np.ndarray, y: np.ndarray, target_precision: float) -> tuple[float, str]:
    """Lowest threshold with precision >= target on (out-of-fold) data, else the F1-optimal one."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y.astype(int), prob)
    precision, recall = precision[:-1], recall[:-1]
    ok = np.flatnonzero(precision >= target_precision)
    if ok.size:
        return float(thresholds[ok[0]]), f"precision>={target_precision}"
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1))]), f"max-f1 (precision {target_precision} not reachable out of fold)"


#: The post-processing kept unless another one is reliably better out of fold: Correct and Smooth
#: with the random-walk operator (a convex average of the neighbours' evidence).
DEFAULT_SMOOTHING = "walk"


def choose_smoothing(y: np.ndarray, oof: dict[str, np.ndarray], *, seed: int = 0, resamples: int = 200,
                     confidence: float = 0.9) -> tuple[str, dict[str, float]]:
    """The post-processing to keep, from out-of-fold scores ``oof`` (one array per choice, aligned
    with the classes ``y``), and each choice's out-of-fold ROC-AUC.

    :data:`DEFAULT_SMOOTHING` stays unless another choice beats it in at least ``confidence`` of
    ``resamples`` stratified bootstrap resamples of the labelled users (paired: the same resample
    for both); among those that do, the one with the best ROC-AUC wins. With a few hundred labels
    the out-of-fold ROC-AUC of two post-processings differs by noise more often than not (on
    bitcoin-otc, 221 labels, taking the plain maximum picked "none" where random-walk C&S was
    better on the held-out users on every seed); the bootstrap asks for evidence before leaving the
    default. A single choice (a fixed ``smooth``) is returned as it is."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, dtype=bool)
    auc = {c: float(roc_auc_score(y, v)) for c, v in oof.items()}
    if len(oof) == 1 or DEFAULT_SMOOTHING not in oof:
        return max(auc, key=auc.__getitem__), auc
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    wins = {c: 0 for c in oof if c != DEFAULT_SMOOTHING}
    for _ in range(resamples):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        base = roc_auc_score(y[idx], oof[DEFAULT_SMOOTHING][idx])
        for c in wins:
            wins[c] += int(roc_auc_score(y[idx], oof[c][idx]) > base)
    better = [c for c, w in wins.items() if w >= confidence * resamples and auc[c] > auc[DEFAULT_SMOOTHING]]
    return (max(better, key=auc.__getitem__) if better else DEFAULT_SMOOTHING), auc


def train_bot_detector(graph: "Graph", labelled: np.ndarray, is_bot: np.ndarray, config: BotConfig, *,
                       n_real: int | None = None, fold_trainer: "FoldTrainer | None" = None) -> BotModel:
    """Train on the nodes ``labelled`` (indices into ``graph``) with classes ``is_bot`` (bool,
    aligned); see the module docs.

    Nodes ``>= n_real`` are synthetic training examples (augmentation, :mod:`graphrec.tasks.bots.augment`):
    they train every fold's model but are never held out, so the out-of-fold scores behind
    calibration, the threshold and the reported metrics are those of real users only.

    ``fold_trainer`` fits each fold's network (default: full-batch training in this process;
    :class:`graphrec.distributed.training.RayFoldTrainer` fits it with Ray Train)."""
    from graphrec.nn.bot_gnn import layerwise_logits, sparse_adjacency

    start = time.perf_counter()
    indptr, indices = graph.indptr, graph.indices
    labelled = np.asarray(labelled, dtype=np.int64)
    y = np.asarray(is_bot, dtype=bool)
    real = labelled < (graph.num_nodes if n_real is None else n_real)
    n_pos, n_neg = check_labels(y[real])
    folds = max(2, min(config.folds, n_pos, n_neg))
    log.info("training the bot detector: %d users, %d labelled bots, %d labelled non-bots, %d synthetic examples, %d folds",
             graph.num_nodes, n_pos, n_neg, int((~real).sum()), folds)
    configure_torch(config.threads)
    inputs = graph_inputs(graph, hops=config.hops, clustering_pairs=config.clustering_pairs, seed=config.seed,
                          max_profile_dim=config.max_profile_dim)
    adj = sparse_adjacency(indptr, indices)
    fold_of = np.full(y.size, -1, dtype=np.int64)  # -1: synthetic, in every training fold
    fold_of[real] = stratified_folds(y[real], folds, config.seed)
    choices = SMOOTHINGS if config.smooth == "auto" else (config.smooth,)
    oof = {c: np.zeros(y.size, dtype=np.float32) for c in choices}
    states = []
    fold_losses: list[list[float]] = []
    bar = progress("train bots", total=folds, unit="fold")
    for f in range(folds):
        tr = fold_of != f
        net = (fold_trainer or _train_fold)(config, inputs, adj, labelled[tr], y[tr], config.seed * 100 + f)
        fold_bots, fold_humans = labelled[tr][y[tr]], labelled[tr][~y[tr]]
        raw = layerwise_logits(net, inputs.with_labels(fold_bots, fold_humans), indptr, indices)
        for c in choices:
            oof[c][~tr] = post_process(c, raw, indptr, indices, fold_bots, fold_humans)[labelled[~tr]]
        states.append({k: v.detach().numpy().copy() for k, v in net.state_dict().items()})
        if getattr(net, LOSS_HISTORY, None):
            fold_losses.append([round(float(v), 5) for v in getattr(net, LOSS_HISTORY)])
        log.debug("fold %d/%d trained (%.1f s so far)", f + 1, folds, time.perf_counter() - start)
        bar.update()
    bar.close()
    y = y[real]
    smoothing, auc = choose_smoothing(y, {c: v[real] for c, v in oof.items()}, seed=config.seed)
    log.info("post-processing: %s (out-of-fold ROC-AUC %s)", smoothing, ", ".join(f"{c} {a:.4f}" for c, a in auc.items()))
    best = oof[smoothing][real]
    platt = fit_platt(best, y)
    model = BotModel(config, list(graph.feature_names), inputs.scaler, inputs.projection, states, platt, 0.5, "", smoothing=smoothing)
    prob = model.calibrate(best)
    model.threshold, model.threshold_rule = choose_threshold(prob, y, config.target_precision)
    if not model.threshold_rule.startswith("precision"):
        log.warning("bot threshold fell back from the target precision %g (not reachable out of fold) to the F1-optimal one, %.4f: "
                    "the labels may be too few or not separable; check what `graphrec score --dry-run` would flag", config.target_precision,
                    model.threshold)
    model.metrics = {"out_of_fold": classification_metrics(y, prob, model.threshold), "labelled_bots": n_pos, "labelled_non_bots": n_neg,
                     "folds": folds, "synthetic_examples": int((~real).sum()),
                     "smoothing": {"chosen": smoothing, "out_of_fold_roc_auc": {c: round(a, 4) for c, a in auc.items()}},
                     # per-epoch training loss (class-balanced BCE on the label trick's target half) of each fold
                     "train_loss_by_fold": fold_losses}
    model.seconds = time.perf_counter() - start
    log.info("bot detector trained in %.1f s: threshold %.4f (%s), out-of-fold ROC-AUC %.4f", model.seconds, model.threshold,
             model.threshold_rule, model.metrics["out_of_fold"]["roc_auc"])
    return model
