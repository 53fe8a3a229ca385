"""Training the link ranker without leakage, and :class:`LinkPredTask`, its task protocol.

Given a training graph ``G`` (for evaluation: the graph minus the held-out test edges), each of
``rounds`` rounds hides a further ``supervision_fraction`` of G's edges (seeded). Features and GNN
messages are computed on the remaining *message-passing* graph only; the hidden edges are the
positives; every other friend-of-friend candidate of the same user is a negative. The model never
sees an edge that it is asked to predict, and the test edges never reach training at all.
After training, the GNN embeddings are recomputed on the whole of G for serving.

The served weights are the uniform average of the weights after each optimiser step over the last
``1 - average_from`` of training (Polyak averaging / SWA, Izmailov et al. 2018) rather than the last
iterate: same network, so no serving cost, and on ego-Facebook it raised MRR by 0.004-0.008 on
every seed (the last iterate is noisy at the top of the ranking).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.graph import csr_from_edges
from graphrec.core.scaling import ScalingRule, Standardiser
from graphrec.tasks.base import Task
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.features import FEATURE_NAMES, PairFeaturizer
from graphrec.tasks.linkpred.model import LinkModel
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.scorer import RankerWeights

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from graphrec.core.graph import Graph
    from graphrec.nn.link_ranker import LinkRanker

log = logging.getLogger(__name__)

#: Standardisation of the pair features over all training candidates (see
#: :mod:`graphrec.core.scaling`): ``(x - mean) / (std + 1e-6)`` for every column.
SCALING = ScalingRule(min_std=0.0, eps=1e-6)


class LinkPredTask(Task[LinkPredConfig, LinkModel]):
    """Friend recommendation by link prediction (``graphrec train linkpred``).

    Trains on the store's real users (synthetic users left out, the protocol's default snapshot)
    and yields a :class:`~graphrec.tasks.linkpred.model.LinkModel`: the numpy ranker with the
    training graph, the profile matrix, the GNN embeddings and their FAISS index, everything the
    recommender serves from without torch."""

    name = "linkpred"
    kind = LinkModel.kind
    config_type = LinkPredConfig
    model_type = LinkModel

    def fit(self, graph: "Graph", config: LinkPredConfig) -> LinkModel:
        """Train the ranker on every friendship of ``graph`` (its profile features as the profile
        matrix) and build the serving model; ``ValueError`` when the graph has no training signal."""
        edges = graph.edge_array()
        profiles = ProfileMatrix.from_dense(graph.features)
        result = train_ranker(edges, graph.num_nodes, profiles, config)
        indptr, indices = csr_from_edges(edges, graph.num_nodes)
        if graph.external_ids is None:
            ids = [str(i) for i in range(graph.num_nodes)]
        else:
            ids = [str(x) for x in graph.external_ids.tolist()]
        return LinkModel.build(ids, indptr, indices, profiles, result.weights, feature_names=list(graph.feature_names),
                               training=result.summary(), data=dict(graph.data))


@dataclass
class TrainResult:
    """What :func:`train_ranker` returns: the numpy serving weights, the config, the mean listwise
    loss of every epoch, the wall time and the number of training groups (user, round)."""

    weights: RankerWeights
    config: LinkPredConfig
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0
    groups: int = 0

    def summary(self) -> dict[str, Any]:
        """The manifest's ``training`` entry."""
        return {"config": asdict(self.config), "train_loss": self.history, "seconds": round(self.seconds, 2), "groups": self.groups}


def split_edges(edges: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random edge split: (kept, held out), ``round(fraction * m)`` held out."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(edges))
    k = int(round(fraction * len(edges)))
    return edges[perm[k:]], edges[perm[:k]]


def _positives(held: np.ndarray) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for u, v in held.tolist():
        out.setdefault(u, set()).add(v)
        out.setdefault(v, set()).add(u)
    return out


def _norm_adj(indptr: np.ndarray, indices: np.ndarray, n: int) -> "torch.Tensor":
    """``D^-1/2 (A + I) D^-1/2`` as a torch sparse CSR tensor."""
    import torch

    deg = np.diff(indptr).astype(np.float64) + 1.0
    rows = np.concatenate([np.repeat(np.arange(n), np.diff(indptr)), np.arange(n)])
    cols = np.concatenate([indices, np.arange(n)])
    vals = (1.0 / np.sqrt(deg[rows] * deg[cols])).astype(np.float32)
    coo = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(vals), (n, n), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def _node_inputs(profiles: ProfileMatrix, indptr: np.ndarray) -> "torch.Tensor":
    """GNN input: profile features plus scaled log-degree, as a torch sparse matrix."""
    import torch

    n = profiles.num_rows
    deg = np.log1p(np.diff(indptr)).astype(np.float32) / 5.0
    rows = np.concatenate([np.repeat(np.arange(n), np.diff(profiles.indptr)), np.arange(n)])
    cols = np.concatenate([profiles.indices, np.full(n, profiles.dim)])
    vals = np.concatenate([profiles.data, deg])
    return torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(vals), (n, profiles.dim + 1), check_invariants=False).coalesce()


def train_ranker(edges: np.ndarray, num_nodes: int, profiles: ProfileMatrix | None, config: LinkPredConfig) -> TrainResult:
    """Train a :class:`~graphrec.nn.link_ranker.LinkRanker` on the graph ``edges`` (index pairs,
    each friendship once; their order matters: the supervision splits permute it with a seed)."""
    import torch

    from graphrec.nn.link_ranker import LinkRanker, listwise_loss

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    profiles = profiles if profiles is not None else ProfileMatrix.empty(num_nodes)
    use_profiles = profiles.dim > 0
    groups: list[tuple[int, int, np.ndarray, np.ndarray, torch.Tensor | None, np.ndarray]] = []
    rounds: list[tuple[torch.Tensor | None, torch.Tensor | None]] = []
    for r in range(config.rounds):
        mp_edges, held = split_edges(edges, config.supervision_fraction, config.seed * 1000 + r + 1)
        indptr, indices = csr_from_edges(mp_edges, num_nodes)
        feat = PairFeaturizer(indptr, indices, profiles if use_profiles else None)
        pos = _positives(held)
        users = np.array(sorted(pos), dtype=np.int64)
        rng = np.random.default_rng(config.seed * 1000 + r + 101)
        if users.size > config.users_per_round:
            users = rng.choice(users, config.users_per_round, replace=False)
        rounds.append((_norm_adj(indptr, indices, num_nodes), _node_inputs(profiles, indptr)) if config.gnn_dim else (None, None))
        for u in users.tolist():
            c = feat.candidates(u)
            if c.nodes.size == 0:
                continue
            y = np.isin(c.nodes, np.fromiter(pos[u], dtype=np.int64))
            if not y.any():
                continue
            shared = _shared_rows(profiles, u, c.nodes) if use_profiles else None
            groups.append((r, u, c.nodes, c.features, shared, y))
        log.info("linkpred round %d/%d: %d supervision friendships hidden, %d training groups so far", r + 1, config.rounds, len(held), len(groups))
    if not groups:
        raise ValueError("no training signal: no held-out friendship closes a friend-of-friend pair (the graph is too small or has no triangles)")
    scaler = SCALING.fit(np.concatenate([g[3] for g in groups]))

    model = LinkRanker(len(FEATURE_NAMES), profiles.dim, shared_rank=config.shared_rank, hidden=config.hidden, gnn_dim=config.gnn_dim)
    params = [{"params": [p for n, p in model.named_parameters() if not n.startswith("shared")], "weight_decay": config.weight_decay}]
    if model.shared is not None:
        params.append({"params": list(model.shared.parameters()), "weight_decay": config.shared_weight_decay})
    opt = torch.optim.Adam(params, lr=config.lr)
    tensors = [
        (r, u, torch.from_numpy(nodes), torch.from_numpy(scaler.transform(f)), shared, torch.from_numpy(y))
        for r, u, nodes, f, shared, y in groups
    ]
    history: list[float] = []
    model.train()
    steps_per_epoch = (len(tensors) + config.batch_users - 1) // config.batch_users
    total_steps = steps_per_epoch * config.epochs
    avg_start = int(round(config.average_from * total_steps)) if config.average_from > 0 else None
    averaged: dict[str, torch.Tensor] | None = None
    avg_count = 0
    step = 0
    for epoch in range(config.epochs):
        order = np.random.default_rng(config.seed * 7919 + epoch).permutation(len(tensors))
        total = 0.0
        for b in range(0, len(order), config.batch_users):
            batch = order[b : b + config.batch_users]
            embeddings: dict[int, torch.Tensor | None] = {}
            loss = torch.zeros(())
            for i in batch.tolist():
                r, u, nodes, f, shared, y = tensors[i]
                h = None
                if config.gnn_dim:
                    if r not in embeddings:
                        adj, x = rounds[r]
                        embeddings[r] = model.embed(x, adj)
                    h = embeddings[r]
                scores = model(f, shared, None if h is None else h[u], None if h is None else h[nodes])
                loss = loss + listwise_loss(scores, y)
            loss = loss / len(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if avg_start is not None and step > avg_start:
                avg_count += 1
                with torch.no_grad():
                    if averaged is None:
                        averaged = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        for k, v in model.state_dict().items():
                            if v.is_floating_point():
                                averaged[k].lerp_(v, 1.0 / avg_count)
            total += float(loss.detach()) * len(batch)
        history.append(round(total / len(tensors), 5))
        log.info("linkpred epoch %d/%d: listwise loss %.5f", epoch + 1, config.epochs, history[-1])

    model.eval()
    if averaged is not None:
        model.load_state_dict(averaged)
    weights = _export(model, edges, num_nodes, profiles, config, scaler)
    seconds = time.perf_counter() - start
    log.info("linkpred ranker trained on %d groups in %.1f s", len(groups), seconds)
    return TrainResult(weights, config, history, seconds, len(groups))


def _export(model: "LinkRanker", edges: np.ndarray, num_nodes: int, profiles: ProfileMatrix, config: LinkPredConfig,
            scaler: Standardiser) -> RankerWeights:
    """Numpy serving weights of ``model`` (the pair-feature standardisation as ``scaler``'s
    arrays), with GNN embeddings recomputed on the whole of G."""
    import torch

    embeddings_full = None
    if config.gnn_dim:
        indptr, indices = csr_from_edges(edges, num_nodes)
        with torch.no_grad():
            h = model.embed(_node_inputs(profiles, indptr), _norm_adj(indptr, indices, num_nodes))
        assert h is not None  # gnn_dim > 0: the ranker has a GNN encoder
        embeddings_full = h.numpy()
    layers = [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in model.mlp if isinstance(m, torch.nn.Linear)]
    return RankerWeights(
        mean=scaler.mean,
        std=scaler.std,
        shared=None if model.shared is None else model.shared.weight.detach().numpy().T.copy(),
        layers=layers,
        embeddings=embeddings_full,
    )


def _shared_rows(profiles: ProfileMatrix, user: int, nodes: np.ndarray) -> "torch.Tensor":
    """``x_u ⊙ x_v`` for each candidate v, as a torch sparse COO matrix ``[c, d]``."""
    import torch

    who, cols, prod = profiles.shared_entries(profiles.dense_row(user), nodes)
    idx = torch.from_numpy(np.stack([who, cols]))
    return torch.sparse_coo_tensor(idx, torch.from_numpy(prod.astype(np.float32)), (nodes.size, profiles.dim), check_invariants=False).coalesce()
