"""The friend-recommendation evaluation protocol, with heuristic baselines in the same run.

1. Hold out ``test_fraction`` of the friendships at random (``seed``).
2. Pick up to ``max_users`` users (seeded) with at least one held-out friend.
3. For each, rank **every** user who is not the user and not already a friend in the training
   graph; Recall@K is the share of the user's held-out friends in the top K, and the reciprocal
   rank is that of the first held-out friend (MRR averages it).

Baselines: common neighbours, Adamic-Adar, resource allocation (all over the full ranking) and
personalized PageRank (restart probability 0.5, power iteration). Ties are broken by a fixed
random order (same for every method), so no method gains from node numbering. The model ranks its
candidates (friends-of-friends, with personalized-PageRank pair features) by score and puts them,
in that order, in the positions they hold in the user's personalized-PageRank ranking of every
candidate; everyone else keeps their PPR position (:func:`ppr_slots`; the served recommender
merges the same way, :meth:`graphrec.tasks.linkpred.model.LinkModel.ppr_merge`). On sparse graphs
a third or more of the held-out friends are not friends-of-friends: PPR reaches them, a random
order after the candidates did not (github-musae, bitcoin-otc: the model was below PPR).

**Hard negatives** (HeaRT: Li et al., "Evaluating Graph Neural Networks for Link Prediction:
Current Pitfalls and New Benchmarking", NeurIPS 2023), in the same run on the same split: ranking
against every non-friend is dominated by easy negatives far away in the graph. For each evaluated
user ``u`` the ``hard_negatives`` (default 100) hardest non-friends on the *training* graph are
taken: the top common-neighbour, resource-allocation and personalized-PageRank candidates of ``u``
merged round-robin (best of each list first, duplicates once; ties in the fixed tie order),
excluding ``u``, its training friends and its held-out friends; a user with fewer such candidates
is filled up from the fixed random order. Each held-out friend ``v`` of ``u`` is then ranked among
``u``'s negatives by every method (ties count half, the OGB/HeaRT convention:
:func:`graphrec.core.metrics.ranks_against_negatives`), and MRR and Hits@1/10/20 are averaged over
the held-out pairs. Here the model scores every pair it is given, not only friends-of-friends
(the heuristics score pairs without a common neighbour 0; PPR scores everyone).

**Seeds** (:func:`evaluate_seeds`): the whole protocol once per seed (split, users, tie order,
training); every figure as mean ± standard deviation over the seeds (:func:`graphrec.core.metrics.mean_std`).

**Curves** (what ``graphrec report`` draws; :attr:`EvalReport.curves`, :meth:`SeedSweep.curves`):
from the same rankings as the figures, Recall@K for every K from 1 to :data:`CURVE_K` (mean over
users, summed in the same order as Recall@20/50, so the curve at those K is the printed figure)
and, with hard negatives, Hits@K for every K from 1 to the number of hard negatives (mean over
held-out pairs). They are never printed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import Graph, csr_from_edges, two_hop
from graphrec.core.metrics import NegativeRankMetrics, RankingMetrics, hit_positions, mean_std, ranks_against_negatives
from graphrec.core.ops import personalized_pagerank, walk_transpose
from graphrec.progress import track
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.features import PairFeaturizer, ppr_columns
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.train import TrainResult, split_edges, train_ranker

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

    from graphrec.store.store import GraphStore

log = logging.getLogger(__name__)


#: Hard negatives per evaluated user (HeaRT protocol); 0 turns the hard-negative ranking off.
HARD_NEGATIVES = 100
#: The Recall@K curve of the report goes from K = 1 to this K.
CURVE_K = 100


class RecallCurve:
    """Recall@K for every K in ``1..k_max``, averaged over users: the curve the report draws.

    Fed the same rankings as :class:`~graphrec.core.metrics.RankingMetrics` (``add(ranking,
    relevant)``); the per-user recalls are summed user by user and divided by the user count, as
    RankingMetrics' ``"running"`` mean does, so ``result()[k - 1]`` equals its ``recall@k``."""

    def __init__(self, k_max: int = CURVE_K) -> None:
        self.k_max = int(k_max)
        self.users = 0
        self._total = np.zeros(self.k_max)

    def add(self, ranking: np.ndarray, relevant: Sequence[int]) -> None:
        """One user's ranking (best first) against its relevant items (non-empty)."""
        pos = hit_positions(np.asarray(ranking), relevant)
        hits = np.bincount(pos[pos < self.k_max], minlength=self.k_max)
        self._total += np.cumsum(hits) / len(relevant)
        self.users += 1

    def result(self) -> list[float]:
        """``[recall@1, ..., recall@k_max]`` (zeros without users)."""
        return (self._total / max(self.users, 1)).tolist()


class HitsCurve:
    """Hits@K for every K in ``1..k_max`` of positives ranked against their own negatives (the
    hard-negative ranking, :func:`~graphrec.core.metrics.ranks_against_negatives`: ties count
    half), averaged over the positive pairs like :class:`~graphrec.core.metrics.NegativeRankMetrics`."""

    def __init__(self, k_max: int) -> None:
        self.k_max = int(k_max)
        self.pairs = 0
        self._hits = np.zeros(self.k_max)

    def add(self, positive: np.ndarray, negative: np.ndarray) -> None:
        """The positives of one source (their scores) against that source's negatives."""
        r = ranks_against_negatives(positive, negative)
        self._hits += (r[None, :] <= np.arange(1, self.k_max + 1)[:, None]).sum(axis=1)
        self.pairs += int(r.size)

    def result(self) -> list[float]:
        """``[hits@1, ..., hits@k_max]`` (zeros without pairs)."""
        return (self._hits / max(self.pairs, 1)).tolist()


@dataclass
class EvalReport:
    """Metrics per method, measured on one split in one run: ``metrics`` over the full ranking
    (Recall@K, MRR) and ``hard`` against each user's hard negatives (MRR, Hits@K). ``curves``
    holds the report's curve data (module docs; not part of :meth:`as_dict`): ``{"k": [1..K],
    "recall": {method: [recall@1..]}, "hard_k": [1..H], "hard_hits": {method: [hits@1..]}}``
    (the ``hard_`` keys only with hard negatives)."""

    metrics: dict[str, dict[str, float]]
    seconds: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    hard: dict[str, dict[str, float]] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict)

    def best_baseline(self, metric: str, *, hard: bool = False) -> tuple[str, float]:
        """The best heuristic (not the model) on ``metric`` (of ``hard`` with ``hard``), and its value."""
        table = self.hard if hard else self.metrics
        base = {k: v[metric] for k, v in table.items() if k != "model"}
        name = max(base, key=base.__getitem__)
        return name, base[name]

    def as_dict(self) -> dict[str, Any]:
        """``{params, metrics, seconds, hard_negatives}``."""
        return {"params": self.params, "metrics": self.metrics, "seconds": self.seconds, "hard_negatives": self.hard}


@dataclass
class SeedSweep:
    """The protocol run once per seed (:func:`evaluate_seeds`), summarised as mean ± std."""

    reports: list[EvalReport]

    @property
    def seeds(self) -> list[int]:
        return [int(r.params["seed"]) for r in self.reports]

    def mean_std(self, *, hard: bool = False) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
        """Mean and sample standard deviation over the seeds of every figure (full ranking, or
        the hard-negative ranking with ``hard``)."""
        return mean_std([r.hard if hard else r.metrics for r in self.reports])

    def curves(self) -> dict[str, Any]:
        """The runs' curve data (:attr:`EvalReport.curves`), each curve the mean over the seeds
        at every K, with ``recall_std`` / ``hard_hits_std`` (sample standard deviation per K, 0
        for one seed) beside ``recall`` / ``hard_hits``."""
        first = self.reports[0].curves
        if not first:
            return {}
        out: dict[str, Any] = {}
        for key, k_key in (("recall", "k"), ("hard_hits", "hard_k")):
            if key not in first:
                continue
            out[k_key] = list(first[k_key])
            means, stds = {}, {}
            for method in first[key]:
                values = np.array([r.curves[key][method] for r in self.reports], dtype=np.float64)
                means[method] = values.mean(axis=0).tolist()
                stds[method] = (values.std(axis=0, ddof=1) if len(self.reports) > 1 else np.zeros(values.shape[1])).tolist()
            out[key], out[f"{key}_std"] = means, stds
        return out

    def as_dict(self) -> dict[str, Any]:
        """What ``graphrec eval linkpred --format json`` prints.

        One seed: that run's :meth:`EvalReport.as_dict` (``params`` also lists ``seeds``).
        Several: ``metrics``, ``hard_negatives`` and ``seconds`` are means over the seeds,
        ``std`` holds the standard deviations (``{"metrics": ..., "hard_negatives": ...}``),
        ``params`` the first run's with ``seeds`` instead of ``seed``, and ``per_seed`` every run's
        own dictionary."""
        if len(self.reports) == 1:
            out = self.reports[0].as_dict()
            out["params"] = {**out["params"], "seeds": self.seeds}
            return out
        metrics, metrics_std = self.mean_std()
        hard, hard_std = self.mean_std(hard=True) if self.reports[0].hard else ({}, {})
        seconds, _ = mean_std([{"s": r.seconds} for r in self.reports])
        params = {k: v for k, v in self.reports[0].params.items() if k != "seed"}
        return {
            "params": {**params, "seeds": self.seeds},
            "metrics": metrics,
            "hard_negatives": hard,
            "std": {"metrics": metrics_std, "hard_negatives": hard_std},
            "seconds": {k: round(v, 3) for k, v in seconds["s"].items()},
            "per_seed": [r.as_dict() for r in self.reports],
        }


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


def _model_ppr(walk: "sp.csr_matrix", user: int) -> np.ndarray:
    """The user's personalized PageRank as the ranker computes it in training and serving
    (:func:`~graphrec.tasks.linkpred.features.ppr_columns`: truncated), for its PPR features and
    the positions its candidates are merged into (:func:`ppr_slots`)."""
    return ppr_columns(walk, [np.array([user])])[:, 0]


def ppr_slots(ranked: np.ndarray, ppr_order: np.ndarray) -> np.ndarray:
    """Merge the model's ranked candidates into a personalized-PageRank ranking: ``ppr_order``
    (every rankable node, best PPR first) with the positions its members of ``ranked`` hold
    refilled by ``ranked`` in the model's order. Non-candidates keep their PPR positions."""
    ranked = np.asarray(ranked, dtype=np.int64)
    out = np.asarray(ppr_order, dtype=np.int64).copy()
    slots = np.isin(out, ranked)
    out[slots] = ranked
    return out


def top_nodes(nodes: np.ndarray, scores: np.ndarray, k: int, tie_rank: np.ndarray) -> np.ndarray:
    """The ``k`` of ``nodes`` with the highest ``scores``, best first; equal scores in the order
    of ``tie_rank`` (a node's position in the fixed tie order)."""
    nodes = np.asarray(nodes, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    if k <= 0 or nodes.size == 0:
        return np.empty(0, dtype=np.int64)
    if nodes.size > k:
        kth = np.partition(scores, nodes.size - k)[nodes.size - k]  # the k-th largest score
        keep = scores >= kth
        nodes, scores = nodes[keep], scores[keep]
    order = np.lexsort((tie_rank[nodes], -scores))
    return nodes[order[:k]]


def hard_negative_pool(ranked: Sequence[np.ndarray], k: int, excluded: np.ndarray, fill_order: np.ndarray) -> np.ndarray:
    """Up to ``k`` hard negatives of one user: the lists ``ranked`` (node arrays, best first, none
    of them in ``excluded``) merged round-robin (first of every list, then second, ...; a node
    already taken is skipped), then, when fewer than ``k``, filled up with the first nodes of
    ``fill_order`` (a fixed random order of all nodes) that are neither excluded nor taken."""
    lists = [np.asarray(r, dtype=np.int64) for r in ranked if len(r)]
    if lists:
        stacked = np.concatenate(lists)
        position = np.concatenate([np.arange(r.size) for r in lists])
        which = np.concatenate([np.full(r.size, i) for i, r in enumerate(lists)])
        merged = stacked[np.lexsort((which, position))]
        _, first = np.unique(merged, return_index=True)
        pool = merged[np.sort(first)][:k]
    else:
        pool = np.empty(0, dtype=np.int64)
    if pool.size < k:
        more = fill_order[~np.isin(fill_order, np.concatenate([pool, np.asarray(excluded, dtype=np.int64)]))]
        pool = np.concatenate([pool, more[: k - pool.size]])
    return pool


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
    hard_negatives: int = HARD_NEGATIVES,
) -> tuple[EvalReport, TrainResult | None]:
    """Run the protocol on the graph of ``edges`` (index pairs, each friendship once, in the order
    the seeded split permutes) over ``num_nodes`` users with ``profiles``: the heuristics and
    (``include_model``) the ranker trained on the training split with ``config`` (default: the
    defaults with ``seed``), over the full ranking and, with ``hard_negatives`` > 0, against that
    many hard negatives per user (module docs). Returns the report and the training result."""
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
    tie_rank = np.empty(num_nodes, dtype=np.int64)
    tie_rank[tie_order] = np.arange(num_nodes)
    methods = ["common_neighbours", "adamic_adar", "resource_allocation", "personalized_pagerank"]
    metrics = {m: RankingMetrics() for m in methods}
    hard = {m: NegativeRankMetrics() for m in methods}
    recall_curves = {m: RecallCurve() for m in methods}
    hits_curves = {m: HitsCurve(hard_negatives) for m in methods}
    pools: dict[int, np.ndarray] = {}  # user -> its hard negatives
    seconds = {m: 0.0 for m in methods}
    hard_seconds = 0.0
    walk = walk_transpose(indptr, indices)
    log.info("linkpred evaluation: %d users, %d held-out friendships", users.size, test_edges.shape[0])
    for u in track(users.tolist(), "eval linkpred: heuristics", total=int(users.size), unit="user"):
        exclude = np.concatenate([[u], indices[indptr[u] : indptr[u + 1]]])
        t0 = time.perf_counter()
        hop = two_hop(indptr, indices, u, deg)
        shared_cost = (time.perf_counter() - t0) / 3  # the 2-hop pass serves all three
        dense: dict[str, np.ndarray] = {}
        for name, vals in (("common_neighbours", hop.cn), ("adamic_adar", hop.aa), ("resource_allocation", hop.ra)):
            seconds[name] += shared_cost
            t = time.perf_counter()
            scores = np.zeros(num_nodes)
            scores[hop.candidates] = vals
            ranking = _full_ranking(scores, exclude, tie)
            metrics[name].add(ranking, held[u])
            seconds[name] += time.perf_counter() - t
            recall_curves[name].add(ranking, held[u])
            dense[name] = scores
        t = time.perf_counter()
        ppr = _ppr(walk, u, num_nodes)
        ranking = _full_ranking(ppr, exclude, tie)
        metrics["personalized_pagerank"].add(ranking, held[u])
        seconds["personalized_pagerank"] += time.perf_counter() - t
        recall_curves["personalized_pagerank"].add(ranking, held[u])
        dense["personalized_pagerank"] = ppr
        if hard_negatives > 0:
            t = time.perf_counter()
            positives = np.asarray(held[u], dtype=np.int64)
            pool = _user_pool(hop.candidates, hop.cn, hop.ra, ppr, exclude, positives, hard_negatives, tie_rank, tie_order)
            pools[u] = pool
            for name in methods:
                hard[name].add(dense[name][positives], dense[name][pool])
            hard_seconds += time.perf_counter() - t
            for name in methods:
                hits_curves[name].add(dense[name][positives], dense[name][pool])
    if hard_negatives > 0:
        seconds["hard_negatives"] = hard_seconds

    result = None
    if include_model:
        cfg = config or LinkPredConfig(seed=seed)
        result = train_ranker(train_edges, num_nodes, profiles, cfg)
        seconds["model_training"] = result.seconds
        feat = PairFeaturizer(indptr, indices, profiles)
        w = result.weights
        m = RankingMetrics()
        model_curve = RecallCurve()
        model_seconds = 0.0
        for u in track(users.tolist(), "eval linkpred: model ranking", total=int(users.size), unit="user"):
            t = time.perf_counter()
            ppr = _model_ppr(walk, u)
            c = feat.candidates(u, shared_weights=w.shared, ppr=ppr)
            s = w.score(c, None if w.embeddings is None else w.embeddings[u]) + tie[c.nodes]
            ranked = c.nodes[np.argsort(-s, kind="stable")]
            exclude = np.concatenate([[u], indices[indptr[u] : indptr[u + 1]]])
            ranking = ppr_slots(ranked, _full_ranking(ppr, exclude, tie))
            m.add(ranking, held[u])
            model_seconds += time.perf_counter() - t
            model_curve.add(ranking, held[u])
        seconds["model"] = model_seconds
        metrics["model"] = m
        recall_curves["model"] = model_curve
        if hard_negatives > 0:
            t = time.perf_counter()
            hard["model"] = NegativeRankMetrics()
            hits_curves["model"] = HitsCurve(hard_negatives)
            for u in track(users.tolist(), "eval linkpred: model on hard negatives", total=int(users.size), unit="user"):
                positives = np.asarray(held[u], dtype=np.int64)
                s = _model_scores(result, feat, u, np.concatenate([positives, pools[u]]), num_nodes, _model_ppr(walk, u))
                hard["model"].add(s[positives], s[pools[u]])
                hits_curves["model"].add(s[positives], s[pools[u]])
            seconds["model_hard_negatives"] = time.perf_counter() - t
    report = EvalReport(
        metrics={k: v.result() for k, v in metrics.items()},
        seconds={k: round(v, 3) for k, v in seconds.items()},
        params={"seed": seed, "test_fraction": test_fraction, "max_users": int(users.size), "train_edges": int(train_edges.shape[0]),
                "test_edges": int(test_edges.shape[0]), "hard_negatives": int(hard_negatives)},
        hard={k: v.result() for k, v in hard.items()} if hard_negatives > 0 else {},
        curves=_curves(recall_curves, hits_curves if hard_negatives > 0 else None),
    )
    return report, result


def _curves(recall: dict[str, RecallCurve], hits: dict[str, HitsCurve] | None) -> dict[str, Any]:
    """:attr:`EvalReport.curves` from the accumulated curves (the model first, as in ``metrics``)."""
    order = sorted(recall, key=lambda m: m != "model")
    k_max = next(iter(recall.values())).k_max
    out: dict[str, Any] = {"k": list(range(1, k_max + 1)), "recall": {m: recall[m].result() for m in order}}
    if hits:
        h_max = next(iter(hits.values())).k_max
        out["hard_k"] = list(range(1, h_max + 1))
        out["hard_hits"] = {m: hits[m].result() for m in sorted(hits, key=lambda m: m != "model")}
    return out


def _user_pool(candidates: np.ndarray, cn: np.ndarray, ra: np.ndarray, ppr: np.ndarray, exclude: np.ndarray,
               positives: np.ndarray, k: int, tie_rank: np.ndarray, tie_order: np.ndarray) -> np.ndarray:
    """One user's hard negatives: top CN, RA and PPR candidates on the training graph (each list
    up to ``k``), merged round-robin, excluding ``exclude`` (the user and its training friends)
    and ``positives`` (its held-out friends); see :func:`hard_negative_pool`."""
    excluded = np.concatenate([exclude, positives])
    fof = ~np.isin(candidates, positives)
    cands = candidates[fof]
    p = ppr.copy()
    p[excluded] = 0.0
    reach = np.flatnonzero(p > 0)
    lists = [top_nodes(cands, cn[fof], k, tie_rank), top_nodes(cands, ra[fof], k, tie_rank), top_nodes(reach, p[reach], k, tie_rank)]
    return hard_negative_pool(lists, k, excluded, tie_order)


def _model_scores(result: TrainResult, feat: PairFeaturizer, user: int, targets: np.ndarray, num_nodes: int,
                  ppr: np.ndarray | None = None) -> np.ndarray:
    """``float64[num_nodes]``: the trained ranker's score of ``user`` with each of ``targets``
    (friends-of-friends or not; ``-inf`` elsewhere), ``ppr`` the user's PageRank vector."""
    w = result.weights
    c = feat.candidates(user, extra=targets, shared_weights=w.shared, ppr=ppr)
    out = np.full(num_nodes, -np.inf)
    out[c.nodes] = w.score(c, None if w.embeddings is None else w.embeddings[user])
    return out


def evaluate_seeds(
    edges: np.ndarray,
    num_nodes: int,
    profiles: ProfileMatrix | None,
    seeds: Sequence[int],
    *,
    config: LinkPredConfig | None = None,
    **options: Any,
) -> SeedSweep:
    """:func:`evaluate_linkpred` once per seed in ``seeds`` (``options``: its keyword arguments);
    ``config`` (default: the defaults) is used with each run's seed."""
    if not seeds:
        raise ValueError("give at least one seed")
    reports = []
    for seed in seeds:
        cfg = replace(config, seed=seed) if config is not None else LinkPredConfig(seed=seed)
        report, _ = evaluate_linkpred(edges, num_nodes, profiles, seed=seed, config=cfg, **options)
        reports.append(report)
    return SeedSweep(reports)


def evaluate_from_store(
    store: "GraphStore",
    *,
    seed: int = 0,
    seeds: Sequence[int] | None = None,
    test_fraction: float = 0.1,
    max_users: int = 1000,
    epochs: int = 6,
    gnn_dim: int = 16,
    hard_negatives: int = HARD_NEGATIVES,
    threads: int | None = None,
    include_synthetic: bool = False,
) -> dict[str, Any]:
    """``graphrec eval linkpred``: the protocol on the store's current graph (synthetic users only
    with ``include_synthetic``), the ranker trained with ``epochs``, ``gnn_dim`` and ``threads``
    (default: the config's; other hyper-parameters at their defaults) beside CN, AA, RA and PPR,
    over the full ranking and against ``hard_negatives`` hard negatives per user, once for
    ``seed`` or once per seed of ``seeds``.

    Returns :meth:`SeedSweep.as_dict`: ``{"params": ..., "metrics": {method: {"recall@20",
    "recall@50", "mrr", "users"}}, "hard_negatives": {method: {"mrr", "hits@1", "hits@10",
    "hits@20", "pairs"}}, "seconds": ...}``, with ``std`` and ``per_seed`` for several seeds,
    and ``curves`` (:meth:`SeedSweep.curves`: Recall@K and hard-negative Hits@K at every K, for
    the report; :func:`graphrec.reports.run_evaluation` takes it out before the figures are
    printed).
    """
    graph = Graph.from_snapshot(store.snapshot(include_synthetic=include_synthetic), data_version=False)
    config = LinkPredConfig(epochs=epochs, gnn_dim=gnn_dim)
    if threads is not None:
        config = replace(config, threads=threads)
    sweep = evaluate_seeds(
        graph.edge_array(), graph.num_nodes, ProfileMatrix.from_dense(graph.features), list(seeds) if seeds else [seed],
        config=config, test_fraction=test_fraction, max_users=max_users, hard_negatives=hard_negatives,
    )
    return {**sweep.as_dict(), "curves": sweep.curves()}
