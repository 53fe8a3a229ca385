"""Evaluation metrics (numpy; scikit-learn inside the functions that use it).

**Ranking** (:class:`RankingMetrics`), for one user with ranked list ``r`` (best first) and
relevant set ``T`` (held-out friends):

* Recall@K = |top-K(r) ∩ T| / |T|
* reciprocal rank = 1 / (1-based position of the first relevant item), 0 if none is ranked.

Averages are over users (macro), as in the link-prediction literature. A user is added either as
a full ranking (:meth:`RankingMetrics.add`) or as a score for every item
(:meth:`RankingMetrics.add_scores`: only the top ``max(K)`` are sorted, and the rank of the first
relevant item counts the items scoring strictly higher, so ties go in the user's favour).

**Ranking against fixed negatives** (:class:`NegativeRankMetrics`, the HeaRT protocol): each
positive is ranked among its source's hard negatives, ties counting half; MRR and Hits@K over
positive pairs.

**Classification** (:func:`classification_metrics`): ROC-AUC, average precision, F1, precision
and recall at a threshold, and precision@k.

**Seed sweeps** (:func:`mean_std`): mean and standard deviation of every figure over seeds.
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


# -- ranking against a fixed set of negatives (HeaRT) -------------------------------------------

def ranks_against_negatives(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``float64[p]``: the 1-based rank of each positive score among the ``negative`` scores.

    Ties count half (the OGB / HeaRT convention): rank = 1 + (#neg > pos + #neg >= pos) / 2, the
    mean of the optimistic and the pessimistic rank, so a method that scores everything equal gets
    the middle rank, not the top. Scores of ``-inf`` (not scored) tie with each other."""
    pos = np.asarray(positive, dtype=np.float64).reshape(-1)
    neg = np.sort(np.asarray(negative, dtype=np.float64).reshape(-1))
    above = neg.size - np.searchsorted(neg, pos, side="right")  # strictly greater
    at_or_above = neg.size - np.searchsorted(neg, pos, side="left")
    return 1.0 + (above + at_or_above) / 2.0


@dataclass
class NegativeRankMetrics:
    """MRR and Hits@K of positives each ranked against its own fixed set of negatives.

    The HeaRT protocol (Li et al., "Evaluating Graph Neural Networks for Link Prediction: Current
    Pitfalls and New Benchmarking", NeurIPS 2023): every positive pair ``(u, v)`` is ranked among
    hard negatives ``(u, w)`` chosen for ``u``; with ``r`` its rank (:func:`ranks_against_negatives`),
    MRR = mean 1/r and Hits@K = mean [r <= K], averaged over positive pairs (not users)."""

    ks: Sequence[int] = (1, 10, 20)
    _rr: list[float] = field(default_factory=list)
    _hits: dict[int, list[float]] = field(default_factory=dict)

    def add(self, positive: np.ndarray, negative: np.ndarray) -> None:
        """Add the positives of one source (their scores) against that source's negatives."""
        r = ranks_against_negatives(positive, negative)
        self._rr.extend((1.0 / r).tolist())
        for k in self.ks:
            self._hits.setdefault(k, []).extend((r <= k).astype(np.float64).tolist())

    @property
    def pairs(self) -> int:
        return len(self._rr)

    def result(self) -> dict[str, float]:
        """``{"mrr": ..., "hits@1": ..., "hits@10": ..., "hits@20": ..., "pairs": p}`` (0 without pairs)."""
        n = max(self.pairs, 1)
        out = {"mrr": float(np.sum(self._rr)) / n}
        out.update({f"hits@{k}": float(np.sum(self._hits.get(k, []))) / n for k in self.ks})
        out["pairs"] = float(self.pairs)
        return out


# -- several seeds ------------------------------------------------------------------------------

def mean_std(runs: Sequence[dict[str, dict[str, float]]]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one run) over runs of
    ``{method: {metric: value}}`` tables, for every (method, metric) present in the first run.

    A seed sweep reports each figure as mean ± std over the seeds; a method missing from a run
    raises ``KeyError`` rather than averaging over fewer runs."""
    if not runs:
        raise ValueError("mean_std needs at least one run")
    mean: dict[str, dict[str, float]] = {}
    std: dict[str, dict[str, float]] = {}
    for method, metrics in runs[0].items():
        mean[method], std[method] = {}, {}
        for metric in metrics:
            values = np.array([run[method][metric] for run in runs], dtype=np.float64)
            mean[method][metric] = float(values.mean())
            std[method][metric] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std
