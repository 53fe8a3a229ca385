"""Training the bot detector from a few labelled accounts.

Pipeline (all seeded):

1. Node inputs ``x = [standardised profile features ; standardised structural statistics ;
   label-propagation signals]`` (:mod:`graphrec.tasks.bots.signals`).
2. Cross-fitting: the labelled users are split into ``folds`` stratified folds. For each fold a
   :class:`~graphrec.nn.bot_gnn.BotGNN` is trained on the other folds with the *label trick*: each
   epoch a random half of the fold's training labels feeds the label-propagation inputs and the
   loss (class-balanced binary cross-entropy) is taken on the other half, so the model learns to
   use propagated labels without ever seeing a node's own label.
3. Each fold model scores its held-out fold (out-of-fold logits, given that fold's training labels
   as inputs). Platt scaling (Platt 1999) fitted on the out-of-fold logits turns logits into
   calibrated probabilities, and the decision threshold is the lowest one whose out-of-fold
   precision reaches ``target_precision`` (else the F1-optimal one; the manifest says which).
4. Scoring averages the fold models' logits, each given *all* labels as inputs, post-processes
   them with Correct and Smooth (Huang et al., ICLR 2021; :func:`graphrec.tasks.bots.signals.correct_and_smooth`)
   from the same labels (``smooth``; the out-of-fold scores of step 3 go through the same step with
   their fold's labels), then calibrates.

With few labels, cross-fitting uses every label for training, calibration and the threshold
without scoring any label with a model that trained on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphrec.core.ops import STRUCTURAL_NAMES, structural_features
from graphrec.tasks.bots.signals import LabelPropagator, label_signal_names


@dataclass
class BotTrainConfig:
    """Hyper-parameters of :func:`train_bot_detector` (recorded in the model manifest)."""

    seed: int = 0
    folds: int = 5
    epochs: int = 100
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.3
    lr: float = 0.01
    weight_decay: float = 5e-4
    hops: int = 3
    clustering_pairs: int = 32
    max_profile_dim: int = 64
    smooth: bool = True
    target_precision: float = 0.9
    threads: int = 1


@dataclass
class GraphInputs:
    """The label-independent part of the node inputs, and the propagator for the rest."""

    base: np.ndarray  # float32[n, d' + 3], standardised
    mean: np.ndarray
    std: np.ndarray
    projection: np.ndarray | None  # float32[d, d'] when the profile was compressed
    propagator: LabelPropagator
    indptr: np.ndarray
    indices: np.ndarray

    def with_labels(self, bots: np.ndarray, humans: np.ndarray) -> np.ndarray:
        return np.concatenate([self.base, self.propagator(bots, humans)], axis=1)


def graph_inputs(indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, *, hops: int, clustering_pairs: int, seed: int,
                 max_profile_dim: int = 64, mean: np.ndarray | None = None, std: np.ndarray | None = None,
                 projection: np.ndarray | None = None, fitted: bool = False) -> GraphInputs:
    """Standardised profile + structural inputs. With ``fitted`` the given ``mean``, ``std`` and
    ``projection`` (a trained model's) are reused; otherwise they are fitted here.

    Profiles wider than ``max_profile_dim`` columns (e.g. thousands of sparse binary attributes)
    are compressed to that many components by truncated SVD (Halko et al. 2011), which keeps
    training linear in ``n * max_profile_dim`` whatever the profile width."""
    profile = np.asarray(features, dtype=np.float32)
    if not fitted and profile.shape[1] > max_profile_dim:
        from sklearn.utils.extmath import randomized_svd

        _, _, vt = randomized_svd(profile, max_profile_dim, random_state=seed)
        projection = vt.T.astype(np.float32)
    if projection is not None:
        profile = profile @ projection
    raw = np.concatenate([profile, structural_features(indptr, indices, pairs=clustering_pairs, seed=seed)], axis=1)
    if mean is None or std is None:
        mean = raw.mean(axis=0)
        std = raw.std(axis=0)
        std[std < 1e-6] = 1.0
    base = ((raw - mean) / std).astype(np.float32)
    return GraphInputs(base, mean.astype(np.float32), std.astype(np.float32), projection, LabelPropagator(indptr, indices, hops), indptr, indices)


@dataclass
class BotModel:
    """A trained detector: fold models' weights plus normalisation, calibration and threshold."""

    config: BotTrainConfig
    feature_names: list[str]
    mean: np.ndarray
    std: np.ndarray
    projection: np.ndarray | None
    fold_states: list[dict[str, np.ndarray]]
    platt: tuple[float, float]
    threshold: float
    threshold_rule: str
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def input_names(self) -> list[str]:
        profile = self.feature_names if self.projection is None else [f"profile_svd{i}" for i in range(self.projection.shape[1])]
        return [*profile, *STRUCTURAL_NAMES, *label_signal_names(self.config.hops)]

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        a, b = self.platt
        return (1.0 / (1.0 + np.exp(-(a * logits.astype(np.float64) + b)))).astype(np.float32)

    def logits(self, indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, bots: np.ndarray, humans: np.ndarray,
               *, chunk: int = 200_000, inputs: GraphInputs | None = None, threads: int | None = None) -> np.ndarray:
        """Mean fold-model logit of every node, with the given labelled nodes as label inputs
        (``threads``: torch threads, default the training config's)."""
        import torch

        from graphrec.nn.bot_gnn import layerwise_logits

        torch.set_num_threads(threads or self.config.threads)
        if inputs is None:
            inputs = graph_inputs(indptr, indices, features, hops=self.config.hops, clustering_pairs=self.config.clustering_pairs,
                                  seed=self.config.seed, mean=self.mean, std=self.std, projection=self.projection, fitted=True)
        x = inputs.with_labels(bots, humans)
        total = np.zeros(x.shape[0], dtype=np.float64)
        for state in self.fold_states:
            total += layerwise_logits(_model_from_state(self.config, x.shape[1], state), x, indptr, indices, chunk=chunk)
        return (total / len(self.fold_states)).astype(np.float32)

    def raw_scores(self, indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, bots: np.ndarray, humans: np.ndarray,
                   **kwargs: Any) -> np.ndarray:
        """Uncalibrated score of every node: the mean fold logit, after Correct and Smooth when
        the config asks for it (as a logit again)."""
        return _post_process(self.config, self.logits(indptr, indices, features, bots, humans, **kwargs), indptr, indices, bots, humans)

    def predict_proba(self, indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, bots: np.ndarray, humans: np.ndarray,
                      **kwargs: Any) -> np.ndarray:
        """Calibrated bot probability of every node."""
        return self.calibrate(self.raw_scores(indptr, indices, features, bots, humans, **kwargs))


def _post_process(config: BotTrainConfig, logits: np.ndarray, indptr: np.ndarray, indices: np.ndarray, bots: np.ndarray,
                  humans: np.ndarray) -> np.ndarray:
    if not config.smooth:
        return logits
    from graphrec.tasks.bots.signals import correct_and_smooth

    prob = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    g = np.clip(correct_and_smooth(indptr, indices, prob.astype(np.float32), bots, humans), 1e-6, 1 - 1e-6).astype(np.float64)
    return np.log(g / (1 - g)).astype(np.float32)


def _new_model(config: BotTrainConfig, in_dim: int) -> Any:
    from graphrec.nn.bot_gnn import BotGNN

    return BotGNN(in_dim, hidden=config.hidden, layers=config.layers, dropout=config.dropout)


def _model_from_state(config: BotTrainConfig, in_dim: int, state: dict[str, np.ndarray]) -> Any:
    import torch

    model = _new_model(config, in_dim)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    model.eval()
    return model


def _stratified_folds(y: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold number of each labelled node, classes spread evenly."""
    out = np.empty(y.size, dtype=np.int64)
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        out[idx] = np.arange(idx.size) % folds
    return out


def _half_split(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random stratified halves (positions into ``y``): (label inputs, loss targets)."""
    inp, tgt = [], []
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        k = idx.size // 2
        inp.append(idx[:k])
        tgt.append(idx[k:])
    return np.concatenate(inp), np.concatenate(tgt)


def _train_fold(config: BotTrainConfig, inputs: GraphInputs, adj: Any, nodes: np.ndarray, y: np.ndarray, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    in_dim = inputs.base.shape[1] + inputs.propagator.width
    model = _new_model(config, in_dim)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    base = torch.from_numpy(inputs.base)
    model.train()
    for _ in range(config.epochs):
        inp, tgt = _half_split(y, rng)
        lab = torch.from_numpy(inputs.propagator(nodes[inp][y[inp]], nodes[inp][~y[inp]]))
        logits = model(torch.cat([base, lab], dim=1), adj)
        target = torch.from_numpy(y[tgt].astype(np.float32))
        pos = float(target.sum())
        weight = torch.tensor((target.numel() - pos) / max(pos, 1.0))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[torch.from_numpy(nodes[tgt])], target, pos_weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
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


def train_bot_detector(indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, feature_names: list[str],
                       labelled: np.ndarray, is_bot: np.ndarray, config: BotTrainConfig, *, n_real: int | None = None) -> BotModel:
    """Train on labelled nodes ``labelled`` (indices) with classes ``is_bot`` (bool, aligned).

    Nodes ``>= n_real`` are synthetic training examples (augmentation, :mod:`graphrec.tasks.bots.augment`):
    they train every fold's model but are never held out, so the out-of-fold scores behind
    calibration, the threshold and the reported metrics are those of real users only."""
    import torch

    from graphrec.nn.bot_gnn import layerwise_logits, sparse_adjacency

    start = time.perf_counter()
    labelled = np.asarray(labelled, dtype=np.int64)
    y = np.asarray(is_bot, dtype=bool)
    real = labelled < (indptr.size - 1 if n_real is None else n_real)
    n_pos, n_neg = int(y[real].sum()), int((~y[real]).sum())
    if min(n_pos, n_neg) < 2:
        raise ValueError(f"need at least 2 labelled bots and 2 labelled non-bots, got {n_pos} and {n_neg}")
    folds = max(2, min(config.folds, n_pos, n_neg))
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    inputs = graph_inputs(indptr, indices, features, hops=config.hops, clustering_pairs=config.clustering_pairs, seed=config.seed,
                          max_profile_dim=config.max_profile_dim)
    adj = sparse_adjacency(indptr, indices)
    fold_of = np.full(y.size, -1, dtype=np.int64)  # -1: synthetic, in every training fold
    fold_of[real] = _stratified_folds(y[real], folds, rng)
    oof = np.zeros(y.size, dtype=np.float32)
    states = []
    for f in range(folds):
        tr = fold_of != f
        model = _train_fold(config, inputs, adj, labelled[tr], y[tr], config.seed * 100 + f)
        x = inputs.with_labels(labelled[tr][y[tr]], labelled[tr][~y[tr]])
        fold_bots, fold_humans = labelled[tr][y[tr]], labelled[tr][~y[tr]]
        oof[~tr] = _post_process(config, layerwise_logits(model, x, indptr, indices), indptr, indices, fold_bots, fold_humans)[labelled[~tr]]
        states.append({k: v.detach().numpy().copy() for k, v in model.state_dict().items()})
    oof, y = oof[real], y[real]
    platt = fit_platt(oof, y)
    model = BotModel(config, list(feature_names), inputs.mean, inputs.std, inputs.projection, states, platt, 0.5, "")
    prob = model.calibrate(oof)
    model.threshold, model.threshold_rule = choose_threshold(prob, y, config.target_precision)
    model.metrics = {"out_of_fold": classification_metrics(y, prob, model.threshold), "labelled_bots": n_pos, "labelled_non_bots": n_neg, "folds": folds,
                     "synthetic_examples": int((~real).sum())}
    model.seconds = time.perf_counter() - start
    return model


def classification_metrics(y: np.ndarray, prob: np.ndarray, threshold: float, k: int | None = None) -> dict[str, float]:
    """ROC-AUC, average precision, precision/recall/F1 at ``threshold`` and precision@k
    (``k`` defaults to the number of positives)."""
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

    y = np.asarray(y, dtype=bool)
    pred = prob >= threshold
    k = int(y.sum()) if k is None else k
    top = np.argsort(-prob, kind="stable")[:k]
    both = y.any() and not y.all()
    return {
        "roc_auc": float(roc_auc_score(y, prob)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, prob)) if both else float("nan"),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        f"precision@{k}": float(y[top].mean()) if k else float("nan"),
    }
