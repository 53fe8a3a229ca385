"""The bot model's nightly scoring on a partitioned snapshot, stage by stage.

:meth:`BotModel.score_graph <graphrec.tasks.bots.model.BotModel.score_graph>` computed over the
whole graph in one process becomes a sequence of stages over the partitions
(:mod:`graphrec.distributed.cluster`), each the same arithmetic on the partition's rows:

1. structural inputs: degree and mean neighbour degree (one product with the source partitions'
   degrees); clustering from neighbour pairs drawn by node (:func:`graphrec.core.ops.sample_neighbour_pairs`),
   asked of the partition that owns the first neighbour and answered there (a shuffle of
   ``pairs`` queries per user);
2. the standardised profile and structural inputs (the model's projection and scaler, row-wise);
3. the label-propagation inputs: ``hops`` random-walk products and 30 steps of the symmetric
   diffusion, one stage each (:mod:`graphrec.tasks.bots.signals`);
4. for each fold model: the input layer, then one stage per GNN layer (join each partition's
   in-edges with the source partitions' states, aggregate per destination, apply the layer),
   then the jumping-knowledge readout; the fold logits are averaged;
5. Correct and Smooth when the model chose it (2 x 30 diffusion stages), Platt calibration, the
   threshold;
6. the top users explained (the driver merges each partition's top rows), and every partition's
   scores written to the store's staging table by its own worker.

The result equals the local engine's on the same snapshot and model up to the order of float32
additions (the tests check ``max |difference| <= 1e-5``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.distributed.cluster import Cluster, Sources
from graphrec.distributed.graphops import Fetch, PartitionWorker

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.tasks.bots.model import BotModel

#: Label propagation and Correct and Smooth constants (those of graphrec.tasks.bots.signals)
LP_ALPHA, LP_STEPS = 0.85, 30
CS_CORRECT, CS_SMOOTH, CS_STEPS = 0.85, 0.8, 30


class BotScoringPartition(PartitionWorker):
    """Partition ``p`` with the bot model's stages (every stage is a pure function of its
    arguments and the partition's data, so a restarted worker can rerun any of them)."""

    def __init__(self, directory: str | Path, p: int, model: "BotModel") -> None:
        super().__init__(directory, p)
        self.model = model
        labels = self.users.labels
        self.is_bot = np.array([lab == model.positive_label for lab in labels.tolist()], dtype=bool)
        self.is_human = np.array([lab is not None and lab != model.positive_label for lab in labels.tolist()], dtype=bool)
        self._networks: dict[int, Any] = {}

    # -- inputs --------------------------------------------------------------------------------
    def label_counts(self) -> dict[str, int]:
        """Labelled bots and humans here, and the sanity guard's counts (the labels the model
        learned from: real users', and synthetic users' too with ``include_synthetic``)."""
        with_synthetic = bool(getattr(self.model.config, "include_synthetic", False))
        learned = (self.is_bot | self.is_human) & (with_synthetic | ~self.users.is_synthetic)
        return {"bots": int(self.is_bot.sum()), "humans": int(self.is_human.sum()), "learned_labelled": int(learned.sum()),
                "learned_positives": int((learned & self.is_bot).sum())}

    def label_indicator(self) -> np.ndarray:
        """``float32[rows, 2]``: bot and human label indicators."""
        return np.stack([self.is_bot, self.is_human], axis=1).astype(np.float32)

    def neighbour_degree(self) -> np.ndarray:
        """``float32[rows]``: ``log1p`` of the mean degree of each user's friends."""
        from graphrec.distributed.partitions import read_degrees

        total = self.product("binary", lambda q: read_degrees(self.directory, q).astype(np.float64), dtype=np.float64)
        return np.log1p(np.divide(total, self.deg, out=np.zeros(self.rows), where=self.deg > 0)).astype(np.float32)

    def _pairs(self, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from graphrec.core.ops import sample_neighbour_pairs

        eligible = np.flatnonzero(self.deg >= 2)
        indptr, cols = self.global_csr()
        u = np.empty((eligible.size, pairs), dtype=np.int64)
        v = np.empty((eligible.size, pairs), dtype=np.int64)
        step = max(1, 2_000_000 // pairs)  # rows at a time: the hashing's temporaries stay small
        for s in range(0, eligible.size, step):
            rows = eligible[s: s + step]
            u[s: s + step], v[s: s + step] = sample_neighbour_pairs(indptr, cols, rows, rows + self.start, pairs=pairs, seed=seed)
        return eligible, u, v

    def clustering_queries(self, pairs: int, seed: int) -> list[np.ndarray]:
        """The neighbour-pair queries ``(u, v)`` of this partition's users, one ``int64[2, k]``
        array per partition owning ``u`` (in a fixed order :meth:`clustering` repeats)."""
        _, u, v = self._pairs(pairs, seed)
        u, v = u.ravel(), v.ravel()
        owner = self.manifest.partition_of(u)
        order = np.argsort(owner, kind="stable")
        cuts = np.searchsorted(owner[order], np.arange(self.manifest.partitions + 1))
        return [np.stack([u[order[cuts[q]: cuts[q + 1]]], v[order[cuts[q]: cuts[q + 1]]]]) for q in range(self.manifest.partitions)]

    def clustering_answers(self, queries: Fetch) -> list[np.ndarray]:
        """For each partition's queries to this one (``queries(p)``): whether ``v`` is ``u``'s friend."""
        return [self.edge_membership(*queries(p)) for p in range(self.manifest.partitions)]

    def clustering(self, pairs: int, seed: int, answers: Fetch) -> np.ndarray:
        """``float32[rows]``: the share of each user's sampled neighbour pairs that are friends."""
        eligible, u, _ = self._pairs(pairs, seed)
        owner = self.manifest.partition_of(u.ravel())
        order = np.argsort(owner, kind="stable")
        cuts = np.searchsorted(owner[order], np.arange(self.manifest.partitions + 1))
        hit = np.zeros(u.size, dtype=bool)
        for q in range(self.manifest.partitions):
            if cuts[q + 1] > cuts[q]:
                hit[order[cuts[q]: cuts[q + 1]]] = answers(q)
        out = np.zeros(self.rows, dtype=np.float32)
        out[eligible] = hit.reshape(u.shape).sum(axis=1) / pairs
        return out

    def base_inputs(self, clustering: np.ndarray, nbr_degree: np.ndarray) -> np.ndarray:
        """The standardised profile (projected when the model compresses it) and structural
        inputs: :func:`graphrec.tasks.bots.model.graph_inputs` for these rows."""
        profile = self.users.features
        if self.model.projection is not None:
            profile = profile @ self.model.projection
        structural = np.stack([np.log1p(self.deg).astype(np.float32), clustering, nbr_degree], axis=1)
        raw = np.concatenate([profile, structural], axis=1)
        return np.asarray(self.model.scaler.transform(raw), dtype=np.float32)

    def propagate(self, operator: str, cur: Fetch) -> np.ndarray:
        """One product ``M x`` (float32) with ``M`` the ``walk`` or ``sym`` operator."""
        return np.asarray(self.product(operator, cur), dtype=np.float32)

    def diffusion_seed(self, bots: int, humans: int) -> np.ndarray:
        """Label propagation's start ``Y``: each class's labels with unit total mass."""
        y = np.zeros((self.rows, 2), dtype=np.float32)
        y[self.is_bot, 0] = 1.0 / max(bots, 1)
        y[self.is_human, 1] = 1.0 / max(humans, 1)
        return y

    def diffuse_step(self, operator: str, alpha: float, f: Fetch, y: np.ndarray) -> np.ndarray:
        """One step of ``F <- alpha M F + (1 - alpha) Y`` (:func:`graphrec.core.ops.diffuse`)."""
        return alpha * np.asarray(self.product(operator, f), dtype=np.float32) + (1 - alpha) * y

    def node_inputs(self, base: np.ndarray, walks: list[np.ndarray], lp: np.ndarray, base_rate: np.ndarray) -> np.ndarray:
        """The model's input rows: base inputs, ``log1p(P^k y / rate)`` for each hop and
        ``log1p(n F)`` of label propagation (:class:`graphrec.tasks.bots.signals.LabelPropagator`)."""
        cols = [np.log1p(w / base_rate) for w in walks]
        cols.append(np.log1p(self.manifest.num_users * np.maximum(lp, 0.0)))
        return np.concatenate([base, *cols], axis=1).astype(np.float32)

    # -- the network ---------------------------------------------------------------------------
    def _network(self, fold: int, in_dim: int) -> Any:
        from graphrec.tasks.bots.model import model_from_state

        if fold not in self._networks:
            self._networks = {fold: model_from_state(self.model.config, in_dim, self.model.fold_states[fold])}
        return self._networks[fold]

    def encode(self, fold: int, x: np.ndarray) -> np.ndarray:
        """Fold ``fold``'s input layer on these rows."""
        import torch

        with torch.no_grad():
            return self._network(fold, x.shape[1]).encode_input(_tensor(x)).numpy()

    def gnn_layer(self, fold: int, layer: int, in_dim: int, h: Fetch, h_own: np.ndarray) -> np.ndarray:
        """GNN layer ``layer`` on these rows: the mean of the friends' states (joined from every
        source partition), then the layer (:meth:`graphrec.nn.bot_gnn.BotGNN.layer_from_mean`)."""
        import torch

        total = self.product("binary", h)
        deg = self.deg.astype(np.float32)[:, None]
        inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1.0), 0.0).astype(np.float32)
        with torch.no_grad():
            out = self._network(fold, in_dim).layer_from_mean(layer, torch.from_numpy(total) * torch.from_numpy(inv), _tensor(h_own))
        return out.numpy()

    def readout(self, fold: int, in_dim: int, hs: list[np.ndarray]) -> np.ndarray:
        """The jumping-knowledge readout: fold ``fold``'s logit of each row."""
        import torch

        with torch.no_grad():
            return self._network(fold, in_dim).lin_out(torch.cat([_tensor(h) for h in hs], dim=1)).squeeze(-1).numpy()

    def input_width(self, x: np.ndarray) -> int:
        return int(x.shape[1])

    def fold_mean(self, logits: list[np.ndarray]) -> np.ndarray:
        total = np.zeros(self.rows, dtype=np.float64)
        for part in logits:
            total += part
        return (total / len(logits)).astype(np.float32)

    # -- post-processing and calibration -------------------------------------------------------
    def smoothing_start(self, logits: np.ndarray) -> list[np.ndarray]:
        """Correct and Smooth's start: the model's probability and its error on labelled rows."""
        prob = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        e0 = np.zeros_like(prob)
        e0[self.is_bot] = 1.0 - prob[self.is_bot]
        e0[self.is_human] = 0.0 - prob[self.is_human]
        return [prob, e0]

    def smoothing_middle(self, prob: np.ndarray, correction: np.ndarray) -> np.ndarray:
        g0 = np.clip(prob + correction, 0.0, 1.0)
        g0[self.is_bot] = 1.0
        g0[self.is_human] = 0.0
        return g0

    def smoothing_end(self, smoothed: np.ndarray) -> np.ndarray:
        g = np.clip(smoothed, 1e-6, 1 - 1e-6).astype(np.float64)
        return np.log(g / (1 - g)).astype(np.float32)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        return self.model.calibrate(raw)

    def flag_summary(self, prob: np.ndarray) -> dict[str, Any]:
        """Flagged count and the flagged users' internal ids."""
        flagged = prob >= self.model.threshold
        return {"flagged": int(flagged.sum()), "flagged_user_ids": self.users.user_ids[flagged]}

    def top(self, k: int, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` highest scores here and their positions (ties: lower position first)."""
        order = np.argsort(-prob, kind="stable")[:k]
        return prob[order], order + self.start

    def explain(self, prob: np.ndarray, base: np.ndarray, positions: np.ndarray, labelled: Fetch) -> dict[int, dict[str, Any]]:
        """The explanations of ``positions`` (this partition's), keyed by internal user id:
        :meth:`BotModel.explain <graphrec.tasks.bots.model.BotModel.explain>`'s fields and the score."""
        from graphrec.core.ops import STRUCTURAL_NAMES

        if positions.size == 0:
            return {}
        counts = self.product("binary", labelled)
        rows = positions - self.start
        c = base.shape[1] - len(STRUCTURAL_NAMES) + 1
        scaler = self.model.scaler
        labels = self.users.labels
        out: dict[int, dict[str, Any]] = {}
        for r in rows.tolist():
            out[int(self.users.user_ids[r])] = {
                "score": round(float(prob[r]), 4),
                "friends": int(self.deg[r]),
                "clustering": round(float(base[r, c] * scaler.std[c] + scaler.mean[c]), 3),
                "friends_labelled_bot": int(counts[r, 0]),
                "friends_labelled_human": int(counts[r, 1]),
                "label": labels[r],
            }
        return out

    def write_scores(self, database_url: str, token: str, kind: str, prob: np.ndarray) -> int:
        """Write this partition's scores to the store's staging table (one short transaction)."""
        from graphrec.store.store import GraphStore

        store = GraphStore(database_url)
        return store.stage_scores(token, kind, self.users.user_ids, prob, prob >= self.model.threshold)


def _tensor(x: np.ndarray) -> Any:
    """``x`` as a tensor; arrays read from Ray's object store are read-only, and torch wants
    writable memory, so those are copied (one partition's rows)."""
    import torch

    return torch.from_numpy(x if x.flags.writeable else x.copy())


@dataclass
class PartitionedScores:
    """What the distributed scoring computed: ``prob`` (one reference per partition), the flagged
    count and flagged users' ids, the explained users (by internal id), the label counts and the
    seconds per stage group."""

    prob: list[Any]
    users: int
    flagged: int
    flagged_user_ids: np.ndarray
    details: dict[int, dict[str, Any]]
    labelled: int
    learned_labelled: int
    learned_positives: int
    timings: dict[str, float] = field(default_factory=dict)


def score_partitions(cluster: Cluster, model: "BotModel", *, num_users: int, max_details: int = 10_000) -> PartitionedScores:
    """Score every user of the partitioned snapshot ``cluster`` holds with ``model`` (see the
    module docs); the scores stay in the workers' object store (``prob``)."""
    config = model.config
    P = cluster.partitions
    timings: dict[str, float] = {}
    t = time.perf_counter()
    counts = cluster.get(cluster.stage("label_counts"))
    bots = sum(c["bots"] for c in counts)
    humans = sum(c["humans"] for c in counts)

    nbr = cluster.stage("neighbour_degree")
    queries = cluster.stage("clustering_queries", config.clustering_pairs, config.seed, returns=P)
    answers = cluster.stage("clustering_answers", returns=P, per_partition={"queries": [Sources([queries[p][q] for p in range(P)]) for q in range(P)]})
    del queries
    clustering = cluster.stage("clustering", config.clustering_pairs, config.seed,
                               per_partition={"answers": [Sources([answers[q][p] for q in range(P)]) for p in range(P)]})
    del answers
    base = cluster.stage("base_inputs", own={"clustering": clustering, "nbr_degree": nbr})
    del clustering, nbr
    cluster.get(base[:1])
    timings["structural"] = time.perf_counter() - t

    t = time.perf_counter()
    y = cluster.stage("label_indicator")
    # the label-rate of each class, as LabelPropagator computes it (float32 mean)
    rate = np.array([bots, humans], dtype=np.float32) / np.float32(num_users)
    rate[rate == 0] = 1.0
    walks, cur = [], y
    for _ in range(config.hops):
        cur = cluster.stage("propagate", "walk", Sources(cur))
        walks.append(cur)
    seed_lp = cluster.stage("diffusion_seed", bots, humans)
    f = seed_lp
    for _ in range(LP_STEPS):
        f = cluster.stage("diffuse_step", "sym", LP_ALPHA, Sources(f), own={"y": seed_lp})
    x = cluster.stage("node_inputs", base_rate=rate, own={"base": base, "walks": [list(w) for w in zip(*walks)] if walks else [[] for _ in range(P)], "lp": f})
    del walks, cur, f, seed_lp
    # lists of per-partition refs under "own" are resolved element-wise: walks[p] is partition p's hop list
    in_dim = int(cluster.get(cluster.stage("input_width", own={"x": x}))[0])
    timings["label_inputs"] = time.perf_counter() - t

    t = time.perf_counter()
    fold_logits = []
    for fold in range(len(model.fold_states)):
        h = cluster.stage("encode", fold, own={"x": x})
        hs = [h]
        for layer in range(config.layers):
            h = cluster.stage("gnn_layer", fold, layer, in_dim, Sources(h), own={"h_own": h})
            hs.append(h)
        fold_logits.append(cluster.stage("readout", fold, in_dim, own={"hs": [list(r) for r in zip(*hs)]}))
        del hs, h
    logits = cluster.stage("fold_mean", own={"logits": [list(r) for r in zip(*fold_logits)]})
    del fold_logits, x
    cluster.get(logits[:1])
    timings["gnn"] = time.perf_counter() - t

    t = time.perf_counter()
    raw = logits
    if model.smoothing != "none":
        operator = "walk" if model.smoothing == "walk" else "sym"
        start = cluster.stage("smoothing_start", returns=2, own={"logits": logits})
        prob0, e0 = [s[0] for s in start], [s[1] for s in start]
        e = e0
        for _ in range(CS_STEPS):
            e = cluster.stage("diffuse_step", operator, CS_CORRECT, Sources(e), own={"y": e0})
        g0 = cluster.stage("smoothing_middle", own={"prob": prob0, "correction": e})
        g = g0
        for _ in range(CS_STEPS):
            g = cluster.stage("diffuse_step", operator, CS_SMOOTH, Sources(g), own={"y": g0})
        raw = cluster.stage("smoothing_end", own={"smoothed": g})
        del start, prob0, e0, e, g0, g
    prob = cluster.stage("calibrate", own={"raw": raw})
    summaries = cluster.get(cluster.stage("flag_summary", own={"prob": prob}))
    flagged = sum(s["flagged"] for s in summaries)
    timings["calibrate"] = time.perf_counter() - t

    t = time.perf_counter()
    k = min(max_details, max(flagged, 100))
    tops = cluster.get(cluster.stage("top", k, own={"prob": prob}))
    scores = np.concatenate([s for s, _ in tops]) if tops else np.empty(0, np.float32)
    positions = np.concatenate([pos for _, pos in tops]) if tops else np.empty(0, np.int64)
    chosen = positions[np.lexsort((positions, -scores))[:k]]
    bounds = cluster.get(cluster.stage("bounds"))
    mine = [np.sort(chosen[(chosen >= lo) & (chosen < hi)]) for lo, hi in bounds]
    details: dict[int, dict[str, Any]] = {}
    for part in cluster.get(cluster.stage("explain", labelled=Sources(y), per_partition={"positions": mine}, own={"prob": prob, "base": base})):
        details.update(part)
    timings["explain"] = time.perf_counter() - t
    ids = [s["flagged_user_ids"] for s in summaries]
    return PartitionedScores(prob, num_users, flagged, np.concatenate(ids) if ids else np.empty(0, np.int64), details, bots + humans,
                             sum(c["learned_labelled"] for c in counts), sum(c["learned_positives"] for c in counts), timings)
