"""The privacy gate of ``graphrec synth``: a batch that copies real users is not written.

The generator trains on the real users less a held-out share (``SynthConfig.holdout``). Real
profiles repeat (sparse binary profiles often coincide), so copying is judged against what fresh
real data does, with the held-out rows as that baseline (the DCR protocol of Park et al.,
"Data Synthesis based on Generative Adversarial Networks", VLDB 2018, and of SDMetrics):

* **exact copies**: the share of synthetic rows equal to a training row, against the share of
  held-out real rows equal to one; refused when the excess is significant (one-sided
  two-proportion z-test, ``p < ALPHA``);
* **distance to the closest record (DCR)**: synthetic rows' distance to their nearest training
  row against held-out rows'; refused when synthetic rows are significantly closer (one-sided
  Mann-Whitney U, ``p < ALPHA``);
* **membership inference**: an attacker who holds the synthetic batch ranks real rows by their
  distance to it (closest first; the distance attack of Yeom et al., CSF 2018, as used for
  synthetic data by Stadler et al., USENIX Security 2022); the ROC-AUC of telling training rows
  from held-out rows that way; refused above :data:`MAX_MEMBERSHIP_AUC`.

Distances are Hamming counts on binary profiles and Euclidean on standardised continuous ones.
With fewer than :data:`MIN_ROWS` synthetic or held-out rows the tests cannot decide: the figures
are recorded with ``decided: false`` and the batch is not refused (a warning is logged).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from graphrec.errors import StoreStateError

#: significance of the copy and DCR tests
ALPHA = 0.05
#: the largest membership-inference ROC-AUC a batch may reach (0.5: the attacker learns nothing)
MAX_MEMBERSHIP_AUC = 0.55
#: rows below which the tests cannot decide
MIN_ROWS = 20


class PrivacyGateError(StoreStateError):
    """A synthetic batch copies real users beyond what held-out real data does: nothing was written
    (``--force`` writes it anyway and records the figures). Exit code 4."""


@dataclass
class PrivacyFigures:
    """The gate's figures for one batch (see the module docs) and its verdict."""

    exact_copy_rate: float
    holdout_exact_copy_rate: float
    copy_p_value: float
    dcr_median_synthetic: float
    dcr_median_holdout: float
    dcr_p_value_smaller: float
    membership_auc: float
    synthetic_rows: int
    holdout_rows: int
    decided: bool
    passed: bool
    reasons: list[str] = field(default_factory=list)
    forced: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One line: the figures that refused the batch."""
        return "; ".join(self.reasons) or "no copying beyond the held-out baseline"


def _binary(x: np.ndarray) -> bool:
    return bool(np.isin(x, (0.0, 1.0)).all())


def _distances(reference: np.ndarray, rows: np.ndarray, binary: bool) -> np.ndarray:
    from generative.metrics import distance_to_closest_record

    if reference.shape[0] == 0 or rows.shape[0] == 0:
        return np.full(rows.shape[0], np.inf)
    return distance_to_closest_record(reference, rows, "hamming" if binary else "euclidean")


def privacy_figures(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray, *, seed: int = 0) -> PrivacyFigures:
    """The gate's figures for ``synthetic`` rows drawn by a generator trained on ``train``, with
    ``holdout`` real rows it never saw as the baseline (all ``[rows, d]`` profiles)."""
    from scipy.stats import mannwhitneyu, norm
    from sklearn.metrics import roc_auc_score

    train, holdout, synthetic = (np.asarray(a, dtype=np.float64) for a in (train, holdout, synthetic))
    binary = _binary(train) and _binary(holdout) and _binary(synthetic)
    if not binary:  # Euclidean on the training rows' standardised scale
        mean, std = train.mean(axis=0), train.std(axis=0)
        std[std == 0] = 1.0
        train, holdout, synthetic = ((a - mean) / std for a in (train, holdout, synthetic))
    d_syn, d_hold = _distances(train, synthetic, binary), _distances(train, holdout, binary)
    n_syn, n_hold = int(d_syn.size), int(d_hold.size)
    copy_syn = float(np.mean(d_syn == 0)) if n_syn else 0.0
    copy_hold = float(np.mean(d_hold == 0)) if n_hold else 0.0
    decided = n_syn >= MIN_ROWS and n_hold >= MIN_ROWS
    copy_p = dcr_p = 1.0
    auc = 0.5
    if decided:
        pooled = (copy_syn * n_syn + copy_hold * n_hold) / (n_syn + n_hold)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_syn + 1 / n_hold))
        copy_p = float(norm.sf((copy_syn - copy_hold) / se)) if se > 0 else (0.0 if copy_syn > copy_hold else 1.0)
        dcr_p = float(mannwhitneyu(d_syn, d_hold, alternative="less").pvalue)
        rng = np.random.default_rng(seed)
        m = min(n_hold, train.shape[0])
        members = train[rng.choice(train.shape[0], m, replace=False)]
        closeness = -np.concatenate([_distances(synthetic, members, binary), _distances(synthetic, holdout[:m], binary)])
        auc = float(roc_auc_score(np.r_[np.ones(m), np.zeros(m)], closeness))
    reasons = []
    if decided and copy_p < ALPHA:
        reasons.append(f"{100 * copy_syn:.1f}% of the synthetic rows copy a training row against {100 * copy_hold:.1f}% of held-out "
                       f"real rows (p = {copy_p:.2g})")
    if decided and dcr_p < ALPHA:
        reasons.append(f"synthetic rows sit closer to the training rows than held-out real rows do (median distance "
                       f"{np.median(d_syn):.3g} against {np.median(d_hold):.3g}, p = {dcr_p:.2g})")
    if decided and auc > MAX_MEMBERSHIP_AUC:
        reasons.append(f"a membership-inference attack tells training rows from held-out ones with ROC-AUC {auc:.3f} "
                       f"(limit {MAX_MEMBERSHIP_AUC})")
    return PrivacyFigures(copy_syn, copy_hold, copy_p, float(np.median(d_syn)) if n_syn else 0.0,
                          float(np.median(d_hold)) if n_hold else 0.0, dcr_p, auc, n_syn, n_hold, decided, not reasons, reasons)


def holdout_split(n: int, share: float, seed: int, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, holdout)`` of ``n`` real users, ``share`` of them held out (seeded);
    with ``classes`` (int codes), ``share`` of each class, keeping at least two of each class for
    training (a conditional generator must see every class)."""
    rng = np.random.default_rng([seed, 7])
    groups = [np.arange(n)] if classes is None else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    held = []
    for rows in groups:
        k = min(int(round(rows.size * share)), max(rows.size - 2, 0)) if classes is not None else int(round(rows.size * share))
        held.append(rng.permutation(rows)[:k])
    holdout = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    return np.setdiff1d(np.arange(n), holdout), holdout
