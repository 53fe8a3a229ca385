"""Anomaly injection in the style of PyGOD / BOND (Liu et al., NeurIPS 2022 Datasets track).

Ding et al. (DOMINANT, SDM 2019) and the BOND benchmark evaluate unsupervised graph anomaly
detectors by planting two kinds of anomalies into a real graph:

* **structural** anomalies: ``n_cliques`` groups of ``clique_size`` users chosen uniformly at
  random, each group made fully connected ("a cluster of users who suddenly all befriend each
  other");
* **contextual** anomalies: ``n_contextual`` users whose feature vector is replaced by that of the
  farthest (Euclidean) of ``k`` users drawn at random ("a profile that does not fit its circle").

Both sets are disjoint. :func:`inject_anomalies` returns the new graph with the ground truth
(:class:`Injection`), and works on any graph (the benchmark runs it on ego-Facebook and on generated
graphs with other sizes, so a detector cannot lean on one configuration).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec.core.graph import Graph


@dataclass
class Injection:
    """The graph after injection with the ground truth. Node indices are unchanged; only edges
    and features differ."""

    graph: Graph
    structural: np.ndarray  # bool[n]: member of an injected clique
    contextual: np.ndarray  # bool[n]: features swapped

    @property
    def is_anomaly(self) -> np.ndarray:
        return self.structural | self.contextual


def inject_anomalies(
    graph: Graph,
    *,
    n_cliques: int = 10,
    clique_size: int = 15,
    n_contextual: int = 120,
    k: int = 50,
    seed: int = 0,
) -> Injection:
    """Plant ``n_cliques`` cliques of ``clique_size`` random users and ``n_contextual`` feature
    swaps (each from the farthest of ``k`` random users) into ``graph`` (its feature names are
    kept). Raises ``ValueError`` when the graph is too small for the request."""
    rng = np.random.default_rng(seed)
    edges = graph.edge_array()
    x = graph.features
    n = int(x.shape[0])
    need = n_cliques * clique_size + n_contextual
    if need > n:
        raise ValueError(f"cannot inject {need} anomalous users into a graph of {n}")
    if clique_size < 2 and n_cliques:
        raise ValueError("clique_size must be at least 2")
    chosen = rng.choice(n, size=need, replace=False)
    cliques = chosen[: n_cliques * clique_size].reshape(n_cliques, clique_size)
    swapped = chosen[n_cliques * clique_size:]

    iu, ju = np.triu_indices(clique_size, k=1)
    new = np.concatenate([np.stack([c[iu], c[ju]], axis=1) for c in cliques]) if n_cliques else np.empty((0, 2), np.int64)
    all_edges = np.concatenate([np.asarray(edges, dtype=np.int64).reshape(-1, 2), new.astype(np.int64)])
    all_edges = np.sort(all_edges, axis=1)
    all_edges = np.unique(all_edges[all_edges[:, 0] != all_edges[:, 1]], axis=0)

    out = x.copy()
    for i in swapped:
        pool = rng.choice(n, size=min(k, n), replace=False)
        far = pool[np.argmax(((x[pool] - x[i]) ** 2).sum(axis=1))]
        out[i] = x[far]

    structural = np.zeros(n, dtype=bool)
    structural[cliques.ravel()] = True
    contextual = np.zeros(n, dtype=bool)
    contextual[swapped] = True
    return Injection(Graph.from_edges(all_edges, out, list(graph.feature_names)), structural, contextual)


def community_graph(
    n: int,
    *,
    communities: int = 25,
    mean_degree: float = 8.0,
    n_features: int = 200,
    within: float = 0.85,
    density: float = 0.08,
    seed: int = 0,
) -> Graph:
    """A degree-corrected planted-partition graph with binary profiles tied to communities, for
    tests and for checking detectors on graphs other than ego-Facebook.

    Community sizes are Dirichlet(2); node propensities Pareto(2.5) + 1 (heavy-tailed degrees);
    each of the ``n * mean_degree / 2`` edge draws picks a source by propensity and, with
    probability ``within``, a target in the source's community, else anywhere. Each community
    has a binary prototype (each feature on with probability ``density``); a user copies 85% of
    the prototype's entries and draws the rest as noise. Returns the graph (features
    ``float32[n, n_features]``)."""
    rng = np.random.default_rng(seed)
    comm = rng.choice(communities, size=n, p=rng.dirichlet(np.full(communities, 2.0)))
    theta = rng.pareto(2.5, n) + 1.0
    m = int(n * mean_degree / 2)
    src = rng.choice(n, size=m, p=theta / theta.sum())
    dst = rng.choice(n, size=m, p=theta / theta.sum())
    inside = rng.random(m) < within
    for c in range(communities):
        members = np.flatnonzero(comm == c)
        sel = np.flatnonzero(inside & (comm[src] == c))
        if members.size and sel.size:
            dst[sel] = rng.choice(members, size=sel.size, p=theta[members] / theta[members].sum())
    e = np.sort(np.stack([src, dst], axis=1), axis=1)
    e = np.unique(e[e[:, 0] != e[:, 1]], axis=0)
    proto = rng.random((communities, n_features)) < density
    noise = rng.random((n, n_features)) < density / 2
    x = np.where(rng.random((n, n_features)) < 0.85, proto[comm], noise).astype(np.float32)
    return Graph.from_edges(e.astype(np.int64), x)
