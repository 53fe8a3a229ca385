"""Wiring synthetic users into the real graph: a profile-anchored copy of a real neighbourhood.

A synthetic user ``s`` with profile ``x_s`` gets friendships to real users only:

1. its degree ``d_s`` is drawn from the real users' degree distribution (users with friends), so
   the degree distribution is right by construction (reported as a KS statistic, which is then
   only sampling noise);
2. its *template* is the real user whose profile is closest to ``x_s`` (cosine, an exact FAISS
   inner-product search over unit-normalised profiles, among the ``anchors`` nearest) with between
   ``d_s`` and ``2 d_s`` friends (else a random real user with that many);
3. its first friend is the template; each further friend is, with probability ``closure``, one
   of the template's friends (drawn without replacement), otherwise the next most similar real
   profile: the copying model of graph growth
   (Kleinberg et al., COCOON 1999; Vazquez, Phys. Rev. E 2003), in which a new node links to the
   neighbours of a node like it.

A uniformly random subset of a neighbourhood keeps, in expectation, the share of its pairs that
are friends, so a synthetic user's clustering is its template's, and the templates are users of
about its degree, and befriending the template itself closes a triangle with each of the
template's friends: on ego-Facebook (200 resampled real profiles, seed 0) the synthetic users'
mean clustering is 0.470 against 0.519 for real users at ``closure = 0.9`` (0.523 against 0.529
at 1.0), with degree KS 0.092; the earlier walk-based triadic closure gave 0.25 at its default.
Every triangle a synthetic user closes goes through real users. The trade-off: a synthetic user's friends are mostly friends of one real user (a structural echo of that user's
neighbourhood), which ``closure < 1`` dilutes with profile-similar users. The real graph is not
otherwise changed and synthetic users are never wired to each other. :func:`with_synthetic` is
the graph as it is once a batch is written.
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
    closure: float = 0.9,
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
        # the template: the most similar real user with between ``want`` and twice as many
        # friends (a neighbourhood of about its size), else any with at least ``want``
        template = next((v for v in ranked if want <= deg[v] <= 2 * want), None)
        if template is None:
            close = np.flatnonzero((deg >= want) & (deg <= 2 * want))
            template = int(rng.choice(close)) if close.size else next((v for v in ranked if deg[v] >= want), None)
        if template is None:
            template = int(rng.choice(np.flatnonzero(deg >= want)))
        friends = indices[indptr[template]: indptr[template + 1]]
        from_template = int(rng.binomial(want - 1, closure))
        chosen = [int(template), *(int(v) for v in rng.choice(friends, size=from_template, replace=False))]
        seen = set(chosen)
        for cand in ranked:  # the rest: the most similar profiles not taken yet
            if len(chosen) >= want:
                break
            if cand not in seen:
                seen.add(cand)
                chosen.append(cand)
        while len(chosen) < want:
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
