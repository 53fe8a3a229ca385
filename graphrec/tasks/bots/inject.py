"""Bot-region injection: the evaluation setting of the Sybil-detection literature.

SybilRank (Cao et al., NSDI 2012), SybilBelief (Gong et al., 2014) and SybilSCAR (Wang et al.,
2017) evaluate by attaching a Sybil region to a real social graph: the bots are densely connected
among themselves and reach honest users through a limited number of *attack edges*. Detection
gets harder as attack edges per bot grow, and propagation-only methods collapse there.

:func:`inject_bot_region` builds that setting on any :class:`~graphrec.core.graph.Graph`:

* ``n_bots`` bots, wired among themselves by a Holme-Kim power-law cluster graph (networkx
  ``powerlaw_cluster_graph``) whose mean degree matches the honest graph's, so neither degree nor
  clustering trivially gives them away;
* each bot's profile clones a random honest user's profile with ``flip_fraction`` of its entries
  replaced by another random honest user's (so every column keeps its distribution and the
  profiles alone do not give the bots away);
* each bot gets ``attack_edges`` friendships to honest users chosen uniformly at random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from graphrec.core.graph import Graph

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.store import GraphStore


@dataclass
class InjectedBots:
    """An honest graph with a bot region attached, and the truth: nodes ``0..n_honest-1`` of
    ``graph`` are honest, the rest (``is_bot``) are the injected bots."""

    graph: Graph
    is_bot: np.ndarray  # bool[n]
    n_honest: int

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes


def inject_bot_region(
    graph: Graph,
    *,
    n_bots: int,
    attack_edges: int,
    flip_fraction: float = 0.05,
    triangle_prob: float = 0.5,
    seed: int = 0,
) -> InjectedBots:
    """Attach a bot region of ``n_bots`` nodes to the honest ``graph`` (its friendships and
    profiles; bots get the same feature columns)."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    n = graph.num_nodes
    features = graph.features
    edges = graph.edge_array()
    mean_degree = 2.0 * len(edges) / max(n, 1)
    m = int(np.clip(round(mean_degree / 2), 1, max(n_bots - 1, 1)))
    region = nx.powerlaw_cluster_graph(n_bots, m, triangle_prob, seed=int(rng.integers(2**31)))
    internal = np.array(list(region.edges()), dtype=np.int64).reshape(-1, 2) + n

    bots = np.arange(n, n + n_bots)
    attack = np.stack([np.repeat(bots, attack_edges), rng.integers(0, n, size=n_bots * attack_edges)], axis=1)

    all_edges = np.concatenate([edges, internal, attack])
    all_edges = np.sort(all_edges, axis=1)
    all_edges = np.unique(all_edges[all_edges[:, 0] != all_edges[:, 1]], axis=0)

    clones = features[rng.integers(0, n, size=n_bots)].copy()
    if features.shape[1]:
        # Small changes that keep every column's distribution: each entry is, with probability
        # flip_fraction, replaced by the same column of another random honest user.
        mask = rng.random(clones.shape) < flip_fraction
        donors = features[rng.integers(0, n, size=n_bots)]
        clones = np.where(mask, donors, clones).astype(np.float32)
    is_bot = np.zeros(n + n_bots, dtype=bool)
    is_bot[n:] = True
    injected = Graph.from_edges(all_edges, np.concatenate([features.astype(np.float32), clones]), list(graph.feature_names))
    return InjectedBots(injected, is_bot, n)


def sample_labels(is_bot: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a stratified random ``fraction`` of nodes to label (at least one per class).

    This draws which users an experiment pretends to know (the labelled set of the benchmarks and
    tests), not a train/test split of known labels (that is :mod:`graphrec.core.splits`)."""
    rng = np.random.default_rng(seed)
    out = []
    for cls in (True, False):
        idx = np.flatnonzero(is_bot == cls)
        k = max(1, int(round(fraction * idx.size)))
        out.append(rng.choice(idx, size=min(k, idx.size), replace=False))
    return np.sort(np.concatenate(out))


def honest_graph(n: int, *, mean_degree: int = 10, n_features: int = 16, triangle_prob: float = 0.3, seed: int = 0) -> Graph:
    """A small clustered social graph with binary profiles, for tests and demos: a Holme-Kim
    power-law cluster graph and features that depend on a node's community (so profiles carry
    signal), as a :class:`~graphrec.core.graph.Graph` with feature columns ``f0..``."""
    import networkx as nx

    rng = np.random.default_rng(seed)
    g = nx.powerlaw_cluster_graph(n, max(1, mean_degree // 2), triangle_prob, seed=int(rng.integers(2**31)))
    edges = np.sort(np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2), axis=1)
    community = rng.integers(0, 4, size=n)
    base = rng.random((4, n_features)) * 0.4
    features = (rng.random((n, n_features)) < base[community]).astype(np.float32)
    return Graph.from_edges(edges, features, [f"f{j}" for j in range(n_features)])


def load_into_store(store: "GraphStore", injected: InjectedBots, labelled: np.ndarray) -> None:
    """Write an injected graph to a store: users ``"0".."n-1"`` with the graph's feature columns,
    friendships, and labels ``bot`` / ``human`` (source ``injection``) for ``labelled`` nodes."""
    from graphrec.store.importers import EdgeBatch, LabelBatch, UserBatch

    graph = injected.graph
    ids = [str(i) for i in range(graph.num_nodes)]
    store.load_users(UserBatch("injection", ids, list(graph.feature_names), graph.features, [{} for _ in ids], [], None))
    e = graph.edge_array()
    store.load_edges(EdgeBatch("injection", ids, e[:, 0].copy(), e[:, 1].copy(), int(e.shape[0])), create_users=False)
    lab = np.asarray(labelled).tolist()
    store.load_labels(LabelBatch("injection", [ids[i] for i in lab], ["bot" if injected.is_bot[i] else "human" for i in lab],
                                 ["injection"] * len(lab)))
