"""Wiring synthetic users into the real graph: profile-anchored triadic closure.

A synthetic user ``s`` with profile ``x_s`` gets friendships to real users only:

1. its degree ``d_s`` is drawn from the real users' degree distribution (users with friends), so
   the degree distribution is right by construction (reported as a KS statistic, which is then
   only sampling noise);
2. its first friend is the real user whose profile is closest to ``x_s`` (cosine, an exact FAISS
   inner-product search over unit-normalised profiles): people befriend people like them;
3. each further friend is, with probability ``closure``, a random friend of a random current
   friend (triadic closure, as in the Holme-Kim model, Phys. Rev. E 2002, and Vazquez's local-rules
   growth, Phys. Rev. E 2003), otherwise the next most similar real profile among the
   ``anchors`` nearest.

Closure gives synthetic users the clustering of real ones (measured, not assumed: see
:func:`realism`), anchoring puts them in the community their profile belongs to. The real graph is
not otherwise changed and synthetic users are never wired to each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def wire_synthetic(
    indptr: np.ndarray,
    indices: np.ndarray,
    real_features: np.ndarray,
    synthetic_features: np.ndarray,
    *,
    closure: float = 0.8,
    anchors: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """``int64[m, 2]`` pairs ``(synthetic row, real node)`` wiring each synthetic profile into the
    real graph (CSR ``indptr`` / ``indices`` over ``real_features.shape[0]`` nodes)."""
    import faiss

    rng = np.random.default_rng(seed)
    n = indptr.size - 1
    deg = np.diff(indptr)
    pool = deg[deg > 0]
    if pool.size == 0 or n < 2:
        raise ValueError("the real graph has no friendships to wire synthetic users into")
    k = min(anchors, n)
    index = faiss.IndexFlatIP(real_features.shape[1])
    index.add(_unit(real_features))
    _, near = index.search(_unit(synthetic_features), k)
    degrees = np.minimum(rng.choice(pool, size=synthetic_features.shape[0]), n)
    out: list[np.ndarray] = []
    for s in range(synthetic_features.shape[0]):
        want = int(degrees[s])
        ranked = [int(v) for v in near[s] if v >= 0]
        chosen: list[int] = [ranked[0] if ranked else int(rng.integers(n))]
        seen = set(chosen)
        next_anchor = 1
        tries = 0
        while len(chosen) < want and tries < 20 * want:
            tries += 1
            if rng.random() < closure:
                f = chosen[int(rng.integers(len(chosen)))]
                lo, hi = indptr[f], indptr[f + 1]
                if hi == lo:
                    continue
                cand = int(indices[lo + int(rng.integers(hi - lo))])
            elif next_anchor < len(ranked):
                cand = ranked[next_anchor]
                next_anchor += 1
            else:
                cand = int(rng.integers(n))
            if cand not in seen:
                seen.add(cand)
                chosen.append(cand)
        out.append(np.stack([np.full(len(chosen), s, dtype=np.int64), np.array(chosen, dtype=np.int64)], axis=1))
    return np.concatenate(out) if out else np.empty((0, 2), dtype=np.int64)


@dataclass
class Realism:
    """Graph realism of the synthetic users against the real ones."""

    degree_ks: float  # two-sample Kolmogorov-Smirnov statistic of the degree distributions
    degree_ks_pvalue: float
    clustering_real: float  # mean local clustering coefficient of real users (degree >= 2)
    clustering_synthetic: float  # same for synthetic users

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in self.__dict__.items()}


def realism(indptr: np.ndarray, indices: np.ndarray, is_synthetic: np.ndarray) -> Realism:
    """Compare synthetic and real users of one graph (CSR over all users): degree KS statistic
    and mean local clustering coefficient (exact, from triangle counts)."""
    import scipy.sparse as sp
    from scipy.stats import ks_2samp

    n = indptr.size - 1
    a = sp.csr_matrix((np.ones(indices.size, dtype=np.float64), indices, indptr), shape=(n, n))
    deg = np.diff(indptr)
    tri = np.asarray((a @ a).multiply(a).sum(axis=1)).ravel() / 2.0
    pairs = deg * (deg - 1) / 2.0
    clus = np.divide(tri, pairs, out=np.zeros(n), where=pairs > 0)
    real, syn = ~is_synthetic, is_synthetic
    ks = ks_2samp(deg[real & (deg > 0)], deg[syn]) if syn.any() else None
    ok = deg >= 2
    return Realism(
        float(ks.statistic) if ks else float("nan"),
        float(ks.pvalue) if ks else float("nan"),
        float(clus[real & ok].mean()) if (real & ok).any() else float("nan"),
        float(clus[syn & ok].mean()) if (syn & ok).any() else float("nan"),
    )
