"""Sample-quality and privacy metrics for generated data.

* :func:`precision_recall` -- improved precision and recall (Kynkäänniemi et al., "Improved
  Precision and Recall Metric for Assessing Generative Models", NeurIPS 2019). The real
  manifold is the union of balls ``B(r_i, d_k(r_i))`` where ``d_k`` is the distance from real
  sample ``r_i`` to its k-th nearest *other* real sample (k = 3 in the paper). Precision = share of
  generated samples inside at least one real ball (fidelity); recall = share of real samples
  inside at least one ball around a generated sample, radii from the generated k-NN (coverage).
  Computed directly in the given feature space (the paper uses VGG features of images; for
  8x8 digits and tabular rows we use raw features).
* :func:`classifier_two_sample_auc` -- classifier two-sample test (Lopez-Paz & Oquab,
  "Revisiting Classifier Two-Sample Tests", ICLR 2017): cross-validated ROC-AUC of a gradient
  boosting classifier telling real rows from synthetic ones. 0.5 = indistinguishable, 1 =
  perfectly separable.
* :func:`distance_to_closest_record` / :func:`dcr_comparison` -- privacy check: distance of
  each synthetic row to its nearest training row (DCR). Memorised training rows give DCR 0;
  synthetic DCRs should not be systematically smaller than those of real held-out rows
  (which the model never saw) -- tested one-sided with Mann-Whitney U.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import mannwhitneyu
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import NearestNeighbors

ArrayLike = np.ndarray


def _as2d(a: ArrayLike) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2:
        arr = arr.reshape(len(arr), -1)
    return arr


def knn_radii(x: ArrayLike, k: int = 3) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest other row (Euclidean)."""
    x = _as2d(x)
    if len(x) <= k:
        raise ValueError(f"need more than k={k} rows, got {len(x)}")
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    return dist[:, k]  # column 0 is the row itself (distance 0)


def _coverage(queries: np.ndarray, centres: np.ndarray, radii: np.ndarray, chunk: int = 2048) -> float:
    """Share of ``queries`` within ``radii[j]`` of at least one ``centres[j]``."""
    inside = np.zeros(len(queries), dtype=bool)
    for s in range(0, len(queries), chunk):
        d = cdist(queries[s : s + chunk], centres)
        inside[s : s + chunk] = (d <= radii[None, :]).any(axis=1)
    return float(inside.mean())


@dataclass(frozen=True)
class PrecisionRecall:
    precision: float
    recall: float


def precision_recall(real: ArrayLike, generated: ArrayLike, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall with k-NN manifolds (Kynkäänniemi et al. 2019), Euclidean.

    precision = mean_g 1[exists r: ||g - r|| <= d_k(r; real)],
    recall    = mean_r 1[exists g: ||r - g|| <= d_k(g; generated)]."""
    real, generated = _as2d(real), _as2d(generated)
    precision = _coverage(generated, real, knn_radii(real, k))
    recall = _coverage(real, generated, knn_radii(generated, k))
    return PrecisionRecall(precision, recall)


def classifier_two_sample_auc(real: ArrayLike, synthetic: ArrayLike, seed: int = 0, folds: int = 5) -> float:
    """Mean ``folds``-fold stratified cross-validated ROC-AUC of a
    ``HistGradientBoostingClassifier`` separating real (label 1) from synthetic (label 0) rows
    (Lopez-Paz & Oquab 2017). ~0.5: the classifier cannot tell them apart; ~1: trivially."""
    real, synthetic = _as2d(real), _as2d(synthetic)
    x = np.vstack([real, synthetic])
    y = np.r_[np.ones(len(real), dtype=int), np.zeros(len(synthetic), dtype=int)]
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = HistGradientBoostingClassifier(random_state=seed)
    return float(np.mean(cross_val_score(clf, x, y, cv=cv, scoring="roc_auc")))


Metric = Literal["euclidean", "hamming", "manhattan"]


def distance_to_closest_record(train: ArrayLike, samples: ArrayLike, metric: Metric = "euclidean") -> np.ndarray:
    """For each row of ``samples``, the distance to its nearest row of ``train``.

    ``metric``: ``"euclidean"`` (continuous data), ``"manhattan"`` (L1) or ``"hamming"`` --
    reported as the *count* of differing features (sklearn's Hamming fraction times the number
    of columns), the natural distance between binary rows (equal to L1 on 0/1 data)."""
    train, samples = _as2d(train), _as2d(samples)
    if metric == "hamming":
        nn = NearestNeighbors(n_neighbors=1, metric="hamming", algorithm="brute").fit(train)
        d, _ = nn.kneighbors(samples)
        return d[:, 0] * train.shape[1]
    if metric not in ("euclidean", "manhattan"):
        raise ValueError(f"unknown metric {metric!r}")
    d, _ = NearestNeighbors(n_neighbors=1, metric=metric).fit(train).kneighbors(samples)
    return d[:, 0]


@dataclass(frozen=True)
class DCRComparison:
    """DCR of synthetic rows vs DCR of real held-out rows, both measured to the training set."""

    median_synthetic: float
    median_holdout: float
    share_exact_copies: float  # synthetic rows at distance 0 from a training row
    p_value_smaller: float  # one-sided Mann-Whitney U: synthetic DCRs stochastically smaller


def dcr_comparison(train: ArrayLike, synthetic: ArrayLike, holdout: ArrayLike,
                   metric: Metric = "euclidean") -> DCRComparison:
    """Compare the DCR distribution of ``synthetic`` rows with that of real ``holdout`` rows.

    A small ``p_value_smaller`` (e.g. < 0.05) means synthetic rows sit closer to the training
    rows than fresh real data does -- a sign of memorisation / privacy leakage."""
    d_syn = distance_to_closest_record(train, synthetic, metric)
    d_hold = distance_to_closest_record(train, holdout, metric)
    p = float(mannwhitneyu(d_syn, d_hold, alternative="less").pvalue)
    return DCRComparison(float(np.median(d_syn)), float(np.median(d_hold)), float(np.mean(d_syn == 0)), p)
