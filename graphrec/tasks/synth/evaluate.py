"""How realistic synthetic users are: graph figures (recorded with every ``graphrec synth`` run)
and profile figures (``benchmarks/bench_synth_profiles.py``).

**Graph realism** (:func:`realism`), synthetic users against real users of one graph (of a
batch as it is drawn, :func:`batch_realism`, or of the store as it is now,
:func:`evaluate_from_store`):

* degree distribution: the two-sample Kolmogorov-Smirnov statistic (and p-value) between the
  degrees of synthetic users and of real users with at least one friend;
* mean local clustering coefficient ``C(v) = T(v) / (d(v) (d(v) - 1) / 2)`` over users of degree
  at least 2, with ``T(v)`` the exact triangle count (the diagonal of ``A^3`` halved, computed as
  the row sums of ``(A A) * A``), for each group;
* the share of the triangles a synthetic user is in that it closes through two real users (the
  other triangles would be synthetic users clustering among themselves): ``T_1 / T_S`` with
  ``T_S`` the triangles with at least one synthetic member (all triangles less the real
  subgraph's) and ``T_1`` those with exactly one (for a synthetic ``s``, the friendships among its
  real friends). 1 when synthetic users are never friends of each other, as
  :mod:`~graphrec.tasks.synth.wiring` draws them.

**Profile realism** (:func:`profile_figures`), synthetic rows against held-out real rows:

* classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): cross-validated ROC-AUC of gradient
  boosting telling held-out real profiles from synthetic ones (0.5 = indistinguishable;
  :func:`profile_c2st`, recorded with every ``graphrec synth`` run beside the graph figures);
* distance to closest record (DCR): Euclidean distance of each synthetic profile to its nearest
  training profile, against the same for held-out real profiles; copies would sit closer than
  real unseen people do (one-sided Mann-Whitney U p-value that synthetic DCRs are smaller, the
  medians, and the share of exact copies).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import Graph
from graphrec.core.ops import local_clustering
from graphrec.tasks.synth.wiring import with_synthetic

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


@dataclass
class Realism:
    """Graph realism of the synthetic users against the real ones."""

    degree_ks: float  # two-sample Kolmogorov-Smirnov statistic of the degree distributions
    degree_ks_pvalue: float
    clustering_real: float  # mean local clustering coefficient of real users (degree >= 2)
    clustering_synthetic: float  # same for synthetic users
    triangles_through_real: float = float("nan")  # share of synthetic users' triangles closed through two real users

    def as_dict(self) -> dict[str, float | None]:
        """The figures rounded to 4 digits, None where undefined (what a run records as JSON and
        ``graphrec synth`` prints)."""
        return {k: rounded(v) for k, v in asdict(self).items()}


def rounded(value: float) -> float | None:
    """``value`` rounded to 4 digits, None when it is NaN (JSON and PostgreSQL's JSONB have no NaN)."""
    v = float(value)
    return None if np.isnan(v) else round(v, 4)


def realism(graph: Graph) -> Realism:
    """Compare the synthetic users of ``graph`` (``graph.is_synthetic``) with its real users:
    degree KS statistic and mean local clustering (NaN where a group is empty)."""
    from scipy.stats import ks_2samp

    if graph.is_synthetic is None:
        raise ValueError("realism needs a graph whose is_synthetic flags mark the synthetic users")
    syn = np.asarray(graph.is_synthetic, dtype=bool)
    real = ~syn
    deg = graph.degrees
    clus = local_clustering(graph.indptr, graph.indices)
    ks = ks_2samp(deg[real & (deg > 0)], deg[syn]) if syn.any() else None
    ok = deg >= 2
    return Realism(
        float(ks.statistic) if ks else float("nan"),
        float(ks.pvalue) if ks else float("nan"),
        float(clus[real & ok].mean()) if (real & ok).any() else float("nan"),
        float(clus[syn & ok].mean()) if (syn & ok).any() else float("nan"),
        triangles_through_real(graph.indptr, graph.indices, syn),
    )


def triangles_through_real(indptr: np.ndarray, indices: np.ndarray, synthetic: np.ndarray) -> float:
    """The share of the triangles with a synthetic member that have exactly one (closed through two
    real users; see the module docs); NaN when no triangle has a synthetic member."""
    import scipy.sparse as sp

    n = indptr.size - 1
    a = sp.csr_matrix((np.ones(indices.size, dtype=np.float64), indices, indptr), shape=(n, n))

    def triangles(m: "sp.csr_matrix") -> float:
        return float((m @ m).multiply(m).sum()) / 6.0

    real = np.flatnonzero(~synthetic)
    syn = np.flatnonzero(synthetic)
    with_synthetic = triangles(a) - triangles(a[real][:, real])
    if syn.size == 0 or with_synthetic <= 0:
        return float("nan")
    to_real = a[syn][:, real]  # each synthetic user's real friends
    closed = float((to_real @ a[real][:, real]).multiply(to_real).sum()) / 2.0
    return closed / with_synthetic


def batch_realism(graph: Graph, profiles: np.ndarray, pairs: np.ndarray) -> Realism:
    """:func:`realism` of a batch (``profiles`` wired by ``pairs``) on the real ``graph`` as it
    is once the batch is written."""
    return realism(with_synthetic(graph, profiles, pairs))


@dataclass
class StoreRealism:
    """What :func:`evaluate_from_store` measured: the store's real and synthetic user counts and
    the graph realism of the synthetic users against the real ones."""

    real_users: int
    synthetic_users: int
    realism: Realism

    def as_dict(self) -> dict[str, Any]:
        """``{real_users, synthetic_users, realism: {degree_ks, degree_ks_pvalue, clustering_real,
        clustering_synthetic}}`` (the figures rounded as a synth run records them)."""
        return {"real_users": self.real_users, "synthetic_users": self.synthetic_users, "realism": self.realism.as_dict()}


def evaluate_from_store(store: "GraphStore") -> StoreRealism:
    """Graph realism (:func:`realism`: degree KS statistic, mean local clustering) of every
    synthetic user currently in the store, all batches together, against the store's real users,
    on one consistent snapshot of the active users. Right after a single ``graphrec synth`` run it
    repeats the realism that run recorded; after later changes to the graph it says how the
    synthetic users fit the graph as it is now.

    Raises :class:`~graphrec.errors.StoreStateError` when the store has no synthetic users."""
    from graphrec.errors import StoreStateError

    graph = Graph.from_snapshot(store.snapshot(include_synthetic=True), data_version=False)
    synthetic = np.zeros(graph.num_nodes, dtype=bool) if graph.is_synthetic is None else np.asarray(graph.is_synthetic, dtype=bool)
    if not synthetic.any():
        raise StoreStateError("the store has no synthetic users to evaluate (create some with `graphrec synth --n N`)")
    return StoreRealism(int((~synthetic).sum()), int(synthetic.sum()), realism(graph))


@dataclass
class ProfileFigures:
    """Profile realism of synthetic rows (see the module docstring)."""

    c2st_auc: float
    dcr_median_synthetic: float
    dcr_median_holdout: float
    dcr_p_value_smaller: float
    share_exact_copies: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def profile_c2st(holdout: np.ndarray, synthetic: np.ndarray, *, seed: int = 0, folds: int = 5) -> float:
    """Classifier two-sample ROC-AUC of ``synthetic`` profiles against real ``holdout`` ones (5-fold
    gradient boosting, ``generative.classifier_two_sample_auc``); NaN with fewer than ``2 * folds``
    rows on either side, too few to cross-validate."""
    from generative import classifier_two_sample_auc

    if min(len(holdout), len(synthetic)) < 2 * folds:
        return float("nan")
    return classifier_two_sample_auc(holdout, synthetic, seed=seed, folds=folds)


def profile_figures(train: np.ndarray, holdout: np.ndarray, synthetic: np.ndarray, *, seed: int = 0, folds: int = 5) -> ProfileFigures:
    """C2ST ROC-AUC of ``synthetic`` against ``holdout`` rows and the DCR comparison against the
    ``train`` rows the generator saw (``generative.classifier_two_sample_auc`` and
    ``generative.dcr_comparison``)."""
    from generative import dcr_comparison

    auc = profile_c2st(holdout, synthetic, seed=seed, folds=folds)
    dcr = dcr_comparison(train, synthetic, holdout)
    return ProfileFigures(float(auc), float(dcr.median_synthetic), float(dcr.median_holdout), float(dcr.p_value_smaller),
                          float(dcr.share_exact_copies))
