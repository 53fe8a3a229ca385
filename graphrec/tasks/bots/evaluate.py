"""Evaluating the bot detector beside baselines measured in the same run on the same split.

Protocol (:func:`evaluate_from_store`, ``graphrec eval bots``): the labelled users are split
stratified into a training and a test part (:func:`graphrec.core.splits.stratified_split`); the
model and every baseline learn from the training labels only and are scored on the test users.

Baselines:

* ``features only``: class-balanced logistic regression on the standardised profile features;
* ``gradient-boosted trees``: scikit-learn's ``HistGradientBoostingClassifier`` (class-balanced,
  seeded, default depth and 100 rounds) on the profile, the structural statistics
  (:func:`graphrec.core.ops.structural_features`) and their 1- and 2-hop neighbour means
  (:func:`graphrec.core.ops.neighbour_mean` applied once and twice): the baseline that graph
  anomaly detectors usually fail to beat (Tang et al., "GADBench: Revisiting and Benchmarking
  Supervised Graph Anomaly Detection", NeurIPS 2023);
* ``label propagation``: Zhou et al. 2004 from the labelled bots versus the labelled humans;
* ``personalized PageRank``: degree-normalised PPR from the labelled bots minus from the humans.

The model is judged at its own out-of-fold threshold; the threshold-free baselines at the score
that flags as many test users as there are test bots.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.metrics import classification_metrics
from graphrec.core.ops import STRUCTURAL_NAMES, neighbour_mean, structural_features
from graphrec.tasks.bots.config import BotConfig
from graphrec.tasks.bots.model import SCALING, graph_labels
from graphrec.tasks.bots.signals import (
    label_propagation_scores,
    personalized_pagerank_scores,
)
from graphrec.tasks.bots.train import MIN_LABELS_PER_CLASS, train_bot_detector

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)

#: Labels of each class the evaluation needs: the training part must hold what training needs
#: (:data:`~graphrec.tasks.bots.train.MIN_LABELS_PER_CLASS`) and the test part as many again.
MIN_EVAL_LABELS_PER_CLASS = 2 * MIN_LABELS_PER_CLASS


@dataclass
class BotEvalReport:
    """Metrics per method on the evaluated nodes (``model`` first), the split's sizes, the
    model's threshold and the seed of the run."""

    metrics: dict[str, dict[str, float]]
    n_train: int
    n_test: int
    test_bots: int
    seconds: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5
    seed: int = 0
    smoothing: str = "none"
    #: what the report draws (not printed): ``y_true`` (1 = bot) of the test users, ``scores``
    #: per method (``model`` first; higher = more bot-like) on those users in the same order,
    #: ``probability`` (the model's calibrated bot probabilities, the scale ``threshold`` applies
    #: to) and ``threshold`` (the model's flagging threshold)
    curves: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{seed, n_train, n_test, test_bots, threshold, smoothing, metrics, seconds}`` (what
        ``graphrec eval bots --format json`` prints; ``smoothing``: the post-processing the model
        chose out of fold)."""
        return {"seed": self.seed, "n_train": self.n_train, "n_test": self.n_test, "test_bots": self.test_bots,
                "threshold": self.threshold, "smoothing": self.smoothing, "metrics": self.metrics, "seconds": self.seconds}


def feature_only_scores(features: np.ndarray, train: np.ndarray, y_train: np.ndarray, seed: int) -> np.ndarray:
    """Class-balanced logistic regression on the standardised profile features (all nodes)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float32)
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    x = SCALING.fit(x).transform(x)
    clf = LogisticRegression(class_weight="balanced", max_iter=2000, C=0.1, random_state=seed)
    clf.fit(x[train], y_train.astype(int))
    return clf.decision_function(x)


def tree_feature_names(profile_names: list[str]) -> list[str]:
    """Column names of :func:`tree_features` for a profile with columns ``profile_names``."""
    own = list(profile_names) + list(STRUCTURAL_NAMES)
    return own + [f"hop1_mean:{c}" for c in own] + [f"hop2_mean:{c}" for c in own]


def tree_features(graph: "Graph", *, seed: int = 0) -> np.ndarray:
    """``float32[n, 3 (d + 3)]``: each node's profile and structural statistics ``X``, then the
    mean of ``X`` over its neighbours ``P X`` and over its neighbours' neighbour means ``P (P X)``
    (``P = D^-1 A``; zero rows for isolated nodes). Unscaled: trees do not need it."""
    x = np.concatenate([graph.features, structural_features(graph.indptr, graph.indices, seed=seed)], axis=1).astype(np.float32)
    hop1 = neighbour_mean(graph.indptr, graph.indices, x)
    hop2 = neighbour_mean(graph.indptr, graph.indices, hop1)
    return np.concatenate([x, hop1, hop2], axis=1)


def gradient_boosted_scores(x: np.ndarray, train: np.ndarray, y_train: np.ndarray, seed: int) -> np.ndarray:
    """Bot probability of every row of ``x`` from class-balanced gradient-boosted trees
    (``HistGradientBoostingClassifier``, ``random_state=seed``) fitted on the rows ``train``
    with classes ``y_train``."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    clf = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed)
    clf.fit(x[train], np.asarray(y_train).astype(int))
    return np.asarray(clf.predict_proba(x)[:, 1], dtype=np.float64)


def evaluate_bots(graph: "Graph", train_nodes: np.ndarray, train_y: np.ndarray, test_nodes: np.ndarray, test_y: np.ndarray,
                  config: BotConfig, *, baselines: bool = True) -> BotEvalReport:
    """Train on ``train_nodes`` (classes ``train_y``) and score ``test_nodes`` (``test_y``) with
    the model and, with ``baselines``, the baselines of the module docs."""
    indptr, indices = graph.indptr, graph.indices
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    model = train_bot_detector(graph, train_nodes, train_y, config)
    bots, humans = train_nodes[train_y], train_nodes[~train_y]
    prob = model.predict_proba(graph, bots, humans)
    seconds["model"] = time.perf_counter() - t
    metrics = {"model": classification_metrics(test_y, prob[test_nodes], model.threshold)}
    test_scores: dict[str, np.ndarray] = {"model": prob[test_nodes]}
    if baselines:
        k = int(test_y.sum())
        for name, fn in (
            ("features only", lambda: feature_only_scores(graph.features, train_nodes, train_y, config.seed)),
            ("gradient-boosted trees", lambda: gradient_boosted_scores(tree_features(graph, seed=config.seed), train_nodes, train_y, config.seed)),
            ("label propagation", lambda: label_propagation_scores(indptr, indices, bots, humans)),
            ("personalized pagerank", lambda: personalized_pagerank_scores(indptr, indices, bots, humans)),
        ):
            t = time.perf_counter()
            s = fn()[test_nodes]
            seconds[name] = time.perf_counter() - t
            test_scores[name] = s
            # Threshold-free baselines: F1/precision at the score that flags as many as there are bots.
            thr = np.sort(s)[-k] if 0 < k <= s.size else np.inf
            metrics[name] = classification_metrics(test_y, s, thr, k=k)
    curves = {"y_true": np.asarray(test_y, dtype=np.int8), "scores": test_scores, "probability": prob[test_nodes],
              "threshold": float(model.threshold)}
    return BotEvalReport(metrics, int(train_nodes.size), int(test_nodes.size), int(test_y.sum()), seconds, model.threshold, config.seed,
                         model.smoothing, curves)


def evaluate_from_store(store: "GraphStore", *, seed: int = 0, test_fraction: float = 0.3, folds: int = 5, epochs: int = 100,
                        positive_label: str = "bot", include_synthetic: bool = False, threads: int | None = None) -> BotEvalReport:
    """``graphrec eval bots``: split the store's labelled users (``positive_label`` marks a bot;
    synthetic users left out of the graph unless ``include_synthetic``) stratified, with
    ``test_fraction`` of them held out, and evaluate the model (``folds``, ``epochs``, ``seed``,
    ``threads``: the config's default when None) beside the baselines on the held-out users.

    Raises :class:`~graphrec.errors.StoreStateError` when there are fewer than
    :data:`MIN_EVAL_LABELS_PER_CLASS` labels of a class, or when the split at ``test_fraction``
    leaves the training part unable to train or the test part without a class."""
    from graphrec.core.graph import Graph
    from graphrec.core.splits import stratified_split
    from graphrec.errors import StoreStateError

    graph = Graph.from_snapshot(store.snapshot(include_synthetic=include_synthetic), data_version=False)
    labels = graph_labels(graph, positive_label)
    n_pos, n_neg = int(labels.is_bot.sum()), int((~labels.is_bot).sum())
    if min(n_pos, n_neg) < MIN_EVAL_LABELS_PER_CLASS:
        raise StoreStateError(f"eval bots needs at least {MIN_EVAL_LABELS_PER_CLASS} labelled bots and {MIN_EVAL_LABELS_PER_CLASS} "
                              f"labelled non-bots, the store has {n_pos} and {n_neg}")
    tr, te = stratified_split(labels.is_bot, test_fraction, seed)
    y_tr, y_te = labels.is_bot[tr], labels.is_bot[te]
    if min(int(y_tr.sum()), int((~y_tr).sum())) < MIN_LABELS_PER_CLASS or y_te.all() or not y_te.any():
        raise StoreStateError(f"a test fraction of {test_fraction} leaves {int(y_tr.sum())} bots and {int((~y_tr).sum())} non-bots to train on "
                              f"and {int(y_te.sum())} and {int((~y_te).sum())} to test on: label more users or change the test fraction")
    log.info("evaluating bots: %d labelled users to train on, %d to test on", tr.size, te.size)
    config = BotConfig(seed=seed, folds=folds, epochs=epochs)
    if threads is not None:
        config = replace(config, threads=threads)
    return evaluate_bots(graph, labels.nodes[tr], y_tr, labels.nodes[te], y_te, config)
