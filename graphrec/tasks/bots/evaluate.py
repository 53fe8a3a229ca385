"""Evaluating the bot detector beside baselines measured in the same run on the same split.

Baselines:

* ``features only``: class-balanced logistic regression on the standardised profile features;
* ``label propagation``: Zhou et al. 2004 from the labelled bots versus the labelled humans;
* ``personalized PageRank``: degree-normalised PPR from the labelled bots minus from the humans.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphrec.tasks.bots.signals import label_propagation_scores, personalized_pagerank_scores
from graphrec.tasks.bots.train import BotTrainConfig, classification_metrics, train_bot_detector


@dataclass
class BotEvalReport:
    """Metrics per method on the evaluated nodes (``model`` first)."""

    metrics: dict[str, dict[str, float]]
    n_train: int
    n_test: int
    test_bots: int
    seconds: dict[str, float] = field(default_factory=dict)
    threshold: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return {"n_train": self.n_train, "n_test": self.n_test, "test_bots": self.test_bots, "threshold": self.threshold,
                "metrics": self.metrics, "seconds": self.seconds}


def feature_only_scores(features: np.ndarray, train: np.ndarray, y_train: np.ndarray, seed: int) -> np.ndarray:
    """Class-balanced logistic regression on the standardised profile features (all nodes)."""
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(features, dtype=np.float32)
    if x.shape[1] == 0:
        return np.zeros(x.shape[0])
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std < 1e-6] = 1.0
    x = (x - mean) / std
    clf = LogisticRegression(class_weight="balanced", max_iter=2000, C=0.1, random_state=seed)
    clf.fit(x[train], y_train.astype(int))
    return clf.decision_function(x)


def stratified_split(labelled: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``labelled`` for (train, test), classes split in proportion."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in (True, False):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        k = max(1, int(round(test_fraction * idx.size))) if idx.size > 1 else 0
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def evaluate_bots(indptr: np.ndarray, indices: np.ndarray, features: np.ndarray, feature_names: list[str],
                  train_nodes: np.ndarray, train_y: np.ndarray, test_nodes: np.ndarray, test_y: np.ndarray,
                  config: BotTrainConfig, *, baselines: bool = True) -> BotEvalReport:
    """Train on ``train_nodes`` and score ``test_nodes`` with the model and the baselines."""
    import time

    seconds: dict[str, float] = {}
    t = time.perf_counter()
    model = train_bot_detector(indptr, indices, features, feature_names, train_nodes, train_y, config)
    bots, humans = train_nodes[train_y], train_nodes[~train_y]
    prob = model.predict_proba(indptr, indices, features, bots, humans)
    seconds["model"] = time.perf_counter() - t
    metrics = {"model": classification_metrics(test_y, prob[test_nodes], model.threshold)}
    if baselines:
        k = int(test_y.sum())
        for name, fn in (
            ("features only", lambda: feature_only_scores(features, train_nodes, train_y, config.seed)),
            ("label propagation", lambda: label_propagation_scores(indptr, indices, bots, humans)),
            ("personalized pagerank", lambda: personalized_pagerank_scores(indptr, indices, bots, humans)),
        ):
            t = time.perf_counter()
            s = fn()[test_nodes]
            seconds[name] = time.perf_counter() - t
            # Threshold-free baselines: F1/precision at the score that flags as many as there are bots.
            thr = np.sort(s)[-k] if 0 < k <= s.size else np.inf
            metrics[name] = classification_metrics(test_y, s, thr, k=k)
    return BotEvalReport(metrics, int(train_nodes.size), int(test_nodes.size), int(test_y.sum()), seconds, model.threshold)
