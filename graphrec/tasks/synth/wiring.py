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
:func:`graphrec.tasks.synth.evaluate.realism`), anchoring puts them in the community their profile
belongs to. The real graph is not otherwise changed and synthetic users are never wired to each
other. :func:`with_synthetic` is the graph as it is once a batch is written.
"""

from __future__ import annotations

import numpy as np

from graphrec.core.graph import Graph, csr_from_edges
from graphrec.core.index import EmbeddingIndex


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def wire_synthetic(
    graph: Graph,
    synthetic_features: np.ndarray,
    *,
    closure: float = 0.8,
    anchors: int = 32,
    seed: int = 0,
) -> np.ndarray:
    """``int64[m, 2]`` pairs ``(synthetic row, real node)`` wiring each synthetic profile (rows of
    ``synthetic_features``, the graph's feature columns) into the real ``graph``. ``ValueError``
    when the graph has no friendships to copy degrees and closures from."""
    rng = np.random.default_rng(seed)
    indptr, indices, real_features = graph.indptr, graph.indices, graph.features
    n = indptr.size - 1
    deg = np.diff(indptr)
    pool = deg[deg > 0]
    if pool.size == 0 or n < 2:
        raise ValueError("the real graph has no friendships to wire synthetic users into")
    k = min(anchors, n)
    index = EmbeddingIndex.build(_unit(real_features), exact=True, normalise=False)
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


def with_synthetic(graph: Graph, profiles: np.ndarray, pairs: np.ndarray) -> Graph:
    """The real ``graph`` with the synthetic users ``profiles`` appended as nodes
    ``n .. n + len(profiles) - 1`` and wired by ``pairs`` (from :func:`wire_synthetic`);
    ``is_synthetic`` marks them. The graph a batch produces once written."""
    n, k = graph.num_nodes, int(np.asarray(profiles).shape[0])
    edges = np.concatenate([graph.edge_array(), np.stack([pairs[:, 0] + n, pairs[:, 1]], axis=1)])
    features = np.concatenate([graph.features, np.asarray(profiles, dtype=np.float32)])
    indptr, indices = csr_from_edges(np.sort(edges, axis=1), n + k)
    flags = np.zeros(n + k, dtype=bool)
    flags[n:] = True
    return Graph(indptr, indices, features, list(graph.feature_names), is_synthetic=flags)
