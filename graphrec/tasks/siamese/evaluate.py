"""Cold-start evaluation of the Siamese encoder, beside baselines measured in the same run.

Protocol: hide *every* friendship (and circle membership) of a seeded random ``hidden_fraction``
of users; train on the rest; for each hidden user with at least one friend, rank all other users
from the profile alone and measure Recall@K of its hidden friends (and MRR). Baselines on the same
split: popularity (degree in the training graph, the same list for everyone) and raw profile
cosine similarity. Circles: for hidden users in a circle, precision@10 of same-circle users among
their nearest neighbours, model beside raw-feature cosine (their memberships never reached
training).

Curves (what ``graphrec report`` draws, :attr:`ColdStartReport.curves`, never printed): Recall@K
of every method for every K from 1 to :data:`CURVE_K` (fewer on a graph with fewer other users),
from the same score rows as the figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.metrics import RankingMetrics
from graphrec.tasks.siamese.config import SiameseConfig
from graphrec.tasks.siamese.train import train_encoder

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.core.graph import Graph
    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)

#: The report's Recall@K curves go from K = 1 to this K.
CURVE_K = 100


@dataclass
class ColdStartReport:
    """Ranking metrics by method (``siamese``, ``popularity``, ``profile cosine`` and, with
    circles, ``circles p@10``), how many users were hidden and evaluated, timings, and the seed
    that drew the hidden users. ``curves`` is the report's curve data (not in :meth:`as_dict`):
    ``{"k": [1..K], "recall": {method: [recall@1, ..., recall@K]}}``."""

    metrics: dict[str, dict[str, float]]
    hidden_users: int
    evaluated_users: int
    seconds: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    curves: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``{seed, hidden_users, evaluated_users, metrics, seconds}`` (what ``graphrec eval
        siamese --format json`` prints)."""
        return {"seed": self.seed, "hidden_users": self.hidden_users, "evaluated_users": self.evaluated_users, "metrics": self.metrics,
                "seconds": self.seconds}


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _rank_metrics(score_rows: np.ndarray, users: np.ndarray, truth: list[np.ndarray], ks: tuple[int, ...]) -> dict[str, float]:
    """Recall@K and MRR (:meth:`~graphrec.core.metrics.RankingMetrics.add_scores`, numpy's mean
    over users) where ``score_rows[i]`` scores every node for ``users[i]``."""
    metrics = RankingMetrics(ks, average="pairwise")
    for i, u in enumerate(users.tolist()):
        metrics.add_scores(score_rows[i], truth[i], exclude=u)
    return {k: v for k, v in metrics.result().items() if k != "users"}


def recall_curve(score_rows: np.ndarray, users: np.ndarray, truth: list[np.ndarray], k_max: int) -> list[float]:
    """``[recall@1, ..., recall@k_max]`` averaged over users (numpy's mean, as the figures), with
    ``score_rows[i]`` scoring every node for ``users[i]`` (the user itself never ranked); the
    top ``k_max`` are taken as :meth:`~graphrec.core.metrics.RankingMetrics.add_scores` takes
    its top (partition, then a stable sort by score), so the curve agrees with the printed
    Recall@K up to the order of exactly tied scores at the cut."""
    if users.size == 0:
        return [float("nan")] * k_max
    rows = []
    for i, u in enumerate(users.tolist()):
        s = np.asarray(score_rows[i]).astype(np.float64)
        s[u] = -np.inf
        top = np.argpartition(-s, k_max)[:k_max] if k_max < s.size else np.arange(s.size)
        top = top[np.argsort(-s[top], kind="stable")]
        rows.append(np.cumsum(np.isin(top, truth[i])) / truth[i].size)
    return np.mean(np.stack(rows), axis=0).tolist()


def evaluate_from_store(store: "GraphStore", config: SiameseConfig, *, hidden_fraction: float = 0.1, include_synthetic: bool = False,
                        ks: tuple[int, ...] = (10, 50)) -> ColdStartReport:
    """``graphrec eval siamese``: the cold-start protocol of the module docstring on the store's
    current graph (friendships, profiles, circles; synthetic users only with
    ``include_synthetic``), hiding users with ``config.seed``."""
    from graphrec.core.graph import Graph

    graph = Graph.from_snapshot(store.snapshot(include_synthetic=include_synthetic), data_version=False)
    return evaluate_cold_start(graph, config, hidden_fraction=hidden_fraction, seed=config.seed, ks=ks)


def evaluate_cold_start(graph: "Graph", config: SiameseConfig, *, hidden_fraction: float = 0.1, seed: int = 0,
                        ks: tuple[int, ...] = (10, 50)) -> ColdStartReport:
    """Run the protocol of the module docstring on ``graph`` (its features, friendships and
    circles); ``seed`` draws the hidden users, ``config`` trains the encoder."""
    features = graph.features
    edges = graph.edge_array()
    circles = list(graph.circles)
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    hidden = np.zeros(n, dtype=bool)
    hidden[rng.choice(n, size=max(1, int(round(hidden_fraction * n))), replace=False)] = True
    touches = hidden[edges[:, 0]] | hidden[edges[:, 1]]
    train_edges = edges[~touches]
    train_circles = [np.asarray(c)[~hidden[np.asarray(c, dtype=np.int64)]] for c in (circles or [])]
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    weights = train_encoder(features, train_edges, config, circles=train_circles, trainable=~hidden)
    z = weights.embed(features)
    seconds["model_training"] = time.perf_counter() - t

    held = edges[touches]
    friends: dict[int, list[int]] = {}
    for a, b in held.tolist():
        if hidden[a]:
            friends.setdefault(a, []).append(b)
        if hidden[b]:
            friends.setdefault(b, []).append(a)
    users = np.array(sorted(friends), dtype=np.int64)
    log.info("cold start: %d hidden users, %d with friends to find", int(hidden.sum()), users.size)
    truth = [np.array(sorted(set(friends[u])), dtype=np.int64) for u in users.tolist()]
    deg = np.bincount(train_edges.ravel(), minlength=n).astype(np.float64)
    raw = _normalise(features)
    metrics = {}
    k_max = max(1, min(CURVE_K, n - 1))
    t = time.perf_counter()
    model_rows = z[users] @ z.T
    metrics["siamese"] = _rank_metrics(model_rows, users, truth, ks)
    seconds["model_ranking"] = time.perf_counter() - t
    popularity_rows = np.broadcast_to(deg + 1e-9 * rng.random(n), (users.size, n))
    metrics["popularity"] = _rank_metrics(popularity_rows, users, truth, ks)
    cosine_rows = raw[users] @ raw.T
    metrics["profile cosine"] = _rank_metrics(cosine_rows, users, truth, ks)
    curves = {"k": list(range(1, k_max + 1)),
              "recall": {name: recall_curve(rows, users, truth, k_max)
                         for name, rows in (("siamese", model_rows), ("popularity", popularity_rows), ("profile cosine", cosine_rows))}}
    if circles:
        metrics["circles p@10"] = {"siamese": circle_precision(z, circles, hidden), "profile cosine": circle_precision(raw, circles, hidden)}
    return ColdStartReport(metrics, int(hidden.sum()), int(users.size), seconds, seed, curves)


def circle_precision(z: np.ndarray, circles: list[np.ndarray], users_mask: np.ndarray, k: int = 10) -> float:
    """Mean over users in ``users_mask`` that belong to a circle of the share of their ``k``
    nearest neighbours (by inner product of ``z``) that share a circle with them."""
    member_of: dict[int, set[int]] = {}
    for ci, c in enumerate(circles):
        for m in np.asarray(c, dtype=np.int64).tolist():
            member_of.setdefault(m, set()).add(ci)
    users = [u for u in np.flatnonzero(users_mask).tolist() if u in member_of]
    if not users:
        return float("nan")
    sims = z[users] @ z.T
    sims[np.arange(len(users)), users] = -np.inf
    top = np.argpartition(-sims, k, axis=1)[:, :k]
    prec = []
    for row, u in enumerate(users):
        mine = member_of[u]
        prec.append(np.mean([bool(member_of.get(int(v), set()) & mine) for v in top[row].tolist()]))
    return float(np.mean(prec))
