"""Evaluation metrics (numpy; scikit-learn inside the functions that use it).

**Ranking** (:class:`RankingMetrics`), for one user with ranked list ``r`` (best first) and
relevant set ``T`` (held-out friends):

* Recall@K = |top-K(r) ∩ T| / |T|
* reciprocal rank = 1 / (1-based position of the first relevant item), 0 if none is ranked.

Averages are over users (macro), as in the link-prediction literature. A user is added either as
a full ranking (:meth:`RankingMetrics.add`) or as a score for every item
(:meth:`RankingMetrics.add_scores`: only the top ``max(K)`` are sorted, and the rank of the first
relevant item counts the items scoring strictly higher, so ties go in the user's favour).

**Classification** (:func:`classification_metrics`): ROC-AUC, average precision, F1, precision
and recall at a threshold, and precision@k.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: How :meth:`RankingMetrics.result` averages over users (see :class:`RankingMetrics`).
AVERAGES = ("running", "pairwise")


def hit_positions(ranking: np.ndarray, relevant: Iterable[int]) -> np.ndarray:
    """0-based positions in ``ranking`` of the relevant items, ascending."""
    rel = np.fromiter(relevant, dtype=np.int64)
    return np.flatnonzero(np.isin(ranking, rel))


@dataclass
class RankingMetrics:
    """Accumulates Recall@K (for each K in ``ks``) and MRR over users.

    ``average`` is how :meth:`result` takes the mean over users: ``"running"`` adds the users'
    values one by one and divides by their count (0 with no users), ``"pairwise"`` is numpy's
    mean (pairwise summation; NaN with no users). The two agree up to the last bits of a float;
    each evaluation keeps the one its recorded figures were computed with (link prediction:
    running; Siamese cold start: pairwise)."""

    ks: Sequence[int] = (20, 50)
    average: str = "running"
    users: int = 0
    _recall: dict[int, list[float]] = field(default_factory=dict)
    _rr: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.average not in AVERAGES:
            raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {self.average!r}")

    def _record(self, recalls: Sequence[float], rr: float) -> None:
        for k, value in zip(self.ks, recalls):
            self._recall.setdefault(k, []).append(value)
        self._rr.append(rr)
        self.users += 1

    def add(self, ranking: np.ndarray, relevant: set[int] | Sequence[int]) -> None:
        """Add one user's ranking (best first) against its relevant items (must be non-empty)."""
        n_rel = len(relevant)
        if n_rel == 0:
            raise ValueError("a user needs at least one relevant item")
        pos = hit_positions(np.asarray(ranking), relevant)
        self._record([float(np.count_nonzero(pos < k)) / n_rel for k in self.ks], 1.0 / (pos[0] + 1) if pos.size else 0.0)

    def add_scores(self, scores: np.ndarray, relevant: np.ndarray, *, exclude: int | None = None) -> None:
        """Add one user given a score for every item (higher is better) against its relevant
        items (``relevant``: a non-empty array of item indices); ``exclude`` (the user itself) is
        never ranked. Needs more items than ``max(ks)``."""
        t = np.asarray(relevant)
        if t.size == 0:
            raise ValueError("a user needs at least one relevant item")
        s = np.asarray(scores).astype(np.float64)  # a copy: the exclusion below must not leak out
        if exclude is not None:
            s[exclude] = -np.inf
        kmax = max(self.ks)
        top = np.argpartition(-s, kmax)[:kmax]
        top = top[np.argsort(-s[top], kind="stable")]
        recalls = [np.isin(top[:k], t).sum() / t.size for k in self.ks]
        self._record(recalls, 1.0 / (1 + int((s > s[t].max()).sum())))

    def _mean(self, values: list[float]) -> float:
        if self.average == "pairwise":
            return float(np.mean(values))
        total = 0.0
        for v in values:
            total += v
        return total / max(self.users, 1)

    def result(self) -> dict[str, float]:
        """``{"recall@20": ..., "recall@50": ..., "mrr": ..., "users": n}``."""
        out = {f"recall@{k}": self._mean(self._recall.get(k, [])) for k in self.ks}
        out["mrr"] = self._mean(self._rr)
        out["users"] = float(self.users)
        return out


def classification_metrics(y: np.ndarray, prob: np.ndarray, threshold: float, k: int | None = None) -> dict[str, float]:
    """ROC-AUC, average precision, precision/recall/F1 at ``threshold`` (``prob >= threshold``
    is a positive) and precision@k (``k`` defaults to the number of positives) of the scores
    ``prob`` against the boolean truth ``y``. The threshold-free figures are NaN when ``y`` has
    only one class."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

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
