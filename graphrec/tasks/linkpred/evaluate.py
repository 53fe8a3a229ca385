"""The friend-recommendation evaluation protocol, with heuristic baselines in the same run.

1. Hold out ``test_fraction`` of the friendships at random (``seed``).
2. Pick up to ``max_users`` users (seeded) with at least one held-out friend.
3. For each, rank **every** user who is not the user and not already a friend in the training
   graph; Recall@K is the share of the user's held-out friends in the top K, and the reciprocal
   rank is that of the first held-out friend (MRR averages it).

Baselines: common neighbours, Adamic-Adar, resource allocation (all over the full ranking) and
personalized PageRank (restart probability 0.5, power iteration). Ties are broken by a fixed
random order (same for every method), so no method gains from node numbering. The model ranks its
candidates (friends-of-friends) by score, then everyone else in the same tie order.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import Graph, csr_from_edges, two_hop
from graphrec.core.metrics import RankingMetrics
from graphrec.core.ops import personalized_pagerank, walk_transpose
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.features import PairFeaturizer
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.train import TrainResult, split_edges, train_ranker

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)


@dataclass
class EvalReport:
    """Metrics per method, measured on one split in one run."""

    metrics: dict[str, dict[str, float]]
    seconds: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)

    def best_baseline(self, metric: str) -> tuple[str, float]:
        """The best heuristic (not the model) on ``metric``, and its value."""
        base = {k: v[metric] for k, v in self.metrics.items() if k != "model"}
        name = max(base, key=base.__getitem__)
        return name, base[name]


def _full_ranking(scores: np.ndarray, exclude: np.ndarray, tie: np.ndarray) -> np.ndarray:
    s = scores.astype(np.float64) + tie
    s[exclude] = -np.inf
    k = int(np.count_nonzero(np.isfinite(s)))
    order = np.argsort(-s, kind="stable")
    return order[:k]


def _ppr(walk: "sp.csr_matrix", user: int, n: int, restart: float = 0.5) -> np.ndarray:
    """Personalized PageRank from ``user`` (restart 0.5)."""
    e = np.zeros(n)
    e[user] = 1.0
    return personalized_pagerank(walk, e, restart=restart)


def evaluate_linkpred(
    edges: np.ndarray,
    num_nodes: int,
    profiles: ProfileMatrix | None,
    *,
    seed: int = 0,
    test_fraction: float = 0.1,
    max_users: int = 1000,
    config: LinkPredConfig | None = None,
    include_model: bool = True,
) -> tuple[EvalReport, TrainResult | None]:
    """Run the protocol on the graph of ``edges`` (index pairs, each friendship once, in the order
    the seeded split permutes) over ``num_nodes`` users with ``profiles``: the heuristics and
    (``include_model``) the ranker trained on the training split with ``config`` (default: the
    defaults with ``seed``). Returns the report and the training result."""
    train_edges, test_edges = split_edges(edges, test_fraction, seed)
    indptr, indices = csr_from_edges(train_edges, num_nodes)
    deg = np.diff(indptr)
    held: dict[int, list[int]] = {}
    for u, v in test_edges.tolist():
        held.setdefault(u, []).append(v)
        held.setdefault(v, []).append(u)
    rng = np.random.default_rng(seed)
    users = np.array(sorted(held), dtype=np.int64)
    if users.size > max_users:
        users = np.sort(rng.choice(users, max_users, replace=False))
    tie = np.random.default_rng(seed + 1).random(num_nodes) * 1e-9  # same tie order for all
    tie_order = np.argsort(-tie, kind="stable")
    methods = ["common_neighbours", "adamic_adar", "resource_allocation", "personalized_pagerank"]
    metrics = {m: RankingMetrics() for m in methods}
    seconds = {m: 0.0 for m in methods}
    walk = walk_transpose(indptr, indices)
    log.info("linkpred evaluation: %d users, %d held-out friendships", users.size, test_edges.shape[0])
    for u in users.tolist():
        exclude = np.concatenate([[u], indices[indptr[u] : indptr[u + 1]]])
        t0 = time.perf_counter()
        hop = two_hop(indptr, indices, u, deg)
        shared_cost = (time.perf_counter() - t0) / 3  # the 2-hop pass serves all three
        for name, vals in (("common_neighbours", hop.cn), ("adamic_adar", hop.aa), ("resource_allocation", hop.ra)):
            seconds[name] += shared_cost
            t = time.perf_counter()
            scores = np.zeros(num_nodes)
            scores[hop.candidates] = vals
            metrics[name].add(_full_ranking(scores, exclude, tie), held[u])
            seconds[name] += time.perf_counter() - t
        t = time.perf_counter()
        metrics["personalized_pagerank"].add(_full_ranking(_ppr(walk, u, num_nodes), exclude, tie), held[u])
        seconds["personalized_pagerank"] += time.perf_counter() - t

    result = None
    if include_model:
        cfg = config or LinkPredConfig(seed=seed)
        result = train_ranker(train_edges, num_nodes, profiles, cfg)
        seconds["model_training"] = result.seconds
        feat = PairFeaturizer(indptr, indices, profiles)
        w = result.weights
        m = RankingMetrics()
        t = time.perf_counter()
        for u in users.tolist():
            c = feat.candidates(u, shared_weights=w.shared)
            s = w.score(c, None if w.embeddings is None else w.embeddings[u]) + tie[c.nodes]
            ranked = c.nodes[np.argsort(-s, kind="stable")]
            rest = tie_order[~np.isin(tie_order, np.concatenate([ranked, [u], indices[indptr[u] : indptr[u + 1]]]))]
            m.add(np.concatenate([ranked, rest]), held[u])
        seconds["model"] = time.perf_counter() - t
        metrics["model"] = m
    report = EvalReport(
        metrics={k: v.result() for k, v in metrics.items()},
        seconds={k: round(v, 3) for k, v in seconds.items()},
        params={"seed": seed, "test_fraction": test_fraction, "max_users": int(users.size), "train_edges": int(train_edges.shape[0]), "test_edges": int(test_edges.shape[0])},
    )
    return report, result


def evaluate_from_store(
    store: "GraphStore",
    *,
    seed: int = 0,
    test_fraction: float = 0.1,
    max_users: int = 1000,
    epochs: int = 6,
    gnn_dim: int = 16,
    include_synthetic: bool = False,
) -> dict[str, Any]:
    """``graphrec eval linkpred``: the protocol on the store's current graph (synthetic users only
    with ``include_synthetic``), the ranker trained with ``epochs`` and ``gnn_dim`` (other
    hyper-parameters at their defaults) beside CN, AA, RA and PPR.

    Returns ``{"params": ..., "metrics": {method: {"recall@20", "recall@50", "mrr"}}, "seconds": ...}``.
    """
    graph = Graph.from_snapshot(store.snapshot(include_synthetic=include_synthetic), data_version=False)
    report, _ = evaluate_linkpred(
        graph.edge_array(), graph.num_nodes, ProfileMatrix.from_dense(graph.features), seed=seed, test_fraction=test_fraction,
        max_users=max_users, config=LinkPredConfig(seed=seed, epochs=epochs, gnn_dim=gnn_dim),
    )
    return {"params": report.params, "metrics": report.metrics, "seconds": report.seconds}
