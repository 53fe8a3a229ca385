"""Training the link ranker without leakage, and :class:`LinkPredTask`, its task protocol.

Given a training graph ``G`` (for evaluation: the graph minus the held-out test edges), each of
``rounds`` rounds hides a further ``supervision_fraction`` of G's edges (seeded). Features and GNN
messages are computed on the remaining *message-passing* graph only; the hidden edges are the
positives; every other friend-of-friend candidate of the same user is a negative. The model never
sees an edge that it is asked to predict, and the test edges never reach training at all.
After training, the GNN embeddings are recomputed on the whole of G for serving.

**Vectorised training.** Every (round, user) candidate list is computed once and concatenated
into flat arrays (:class:`TrainingLists`: pair features, candidate ids, labels, list offsets).
A step takes ``batch_users`` lists of one round, gathers their rows with a ragged index, runs the
GCN once on that round's message-passing graph, scores all rows in one forward pass and averages
the lists' listwise losses with segment reductions
(:func:`~graphrec.nn.link_ranker.grouped_listwise_loss`); there is no Python loop over users
after the features are built. The sparse products go through :mod:`graphrec.nn.sparse`.
Batches never mix rounds: one GCN pass per step instead of one per round present, at equal quality.

**Negative subsampling.** A list holds ~600 friend-of-friend candidates on ego-Facebook, nearly
all easy negatives. Each epoch keeps every positive, the ``hard_negatives`` best negatives by
resource allocation and a fresh seeded sample of the others, about ``negatives`` per list
(:func:`sample_rows`); the sampled ones carry importance weights ``1/q`` in the softmax's
partition function (sampled softmax), which keeps the loss an estimate of the full list's. The
weights are essential: without them Recall@20 on ego-Facebook fell from 0.73 to 0.61, below
resource allocation; with them 64 negatives per list matched training on every row.

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

from graphrec.core.graph import csr_from_edges, ragged_positions
from graphrec.core.ops import walk_transpose
from graphrec.core.scaling import ScalingRule, Standardiser
from graphrec.progress import progress
from graphrec.tasks.base import Task
from graphrec.tasks.linkpred.config import LinkPredConfig
from graphrec.tasks.linkpred.features import FEATURE_NAMES, PairFeaturizer, ppr_columns
from graphrec.tasks.linkpred.model import LinkModel
from graphrec.tasks.linkpred.profiles import ProfileMatrix
from graphrec.tasks.linkpred.scorer import RankerWeights

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from graphrec.core.graph import Graph
    from graphrec.nn.link_ranker import LinkRanker
    from graphrec.nn.sparse import RowSparse

log = logging.getLogger(__name__)

#: Standardisation of the pair features over all training candidates (see
#: :mod:`graphrec.core.scaling`): ``(x - mean) / (std + 1e-6)`` for every column.
SCALING = ScalingRule(min_std=0.0, eps=1e-6)
#: Users whose PPR vectors (pair features) one power iteration computes together while the
#: training lists are built: ``n x PPR_CHUNK`` float64 at a time.
PPR_CHUNK = 256


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
    loss of every epoch (over the epoch's sampled rows, importance-weighted: an estimate of the
    loss over every candidate), the wall time and the number of training groups (user, round)."""

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


def _norm_adj(indptr: np.ndarray, indices: np.ndarray, n: int) -> "torch.Tensor":
    """``D^-1/2 (A + I) D^-1/2`` as a torch sparse CSR tensor (symmetric: the GCN multiplies by
    it with :func:`graphrec.nn.sparse.sym_spmm`)."""
    import torch

    deg = np.diff(indptr).astype(np.float64) + 1.0
    rows = np.concatenate([np.repeat(np.arange(n), np.diff(indptr)), np.arange(n)])
    cols = np.concatenate([indices, np.arange(n)])
    vals = (1.0 / np.sqrt(deg[rows] * deg[cols])).astype(np.float32)
    coo = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, cols])), torch.from_numpy(vals), (n, n), check_invariants=False).coalesce()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return coo.to_sparse_csr()


def _node_inputs(profiles: ProfileMatrix, indptr: np.ndarray) -> "RowSparse":
    """GNN input ``[n, d + 1]``: the profile features plus the scaled log-degree
    ``log(1 + deg) / 5`` in the last column, row-sparse."""
    from graphrec.nn.sparse import RowSparse

    n = profiles.num_rows
    deg = np.log1p(np.diff(indptr)).astype(np.float32) / 5.0
    counts = np.diff(profiles.indptr) + 1
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    last = offsets[1:] - 1  # each row's degree entry comes after its profile entries
    cols = np.empty(offsets[-1], dtype=np.int64)
    vals = np.empty(offsets[-1], dtype=np.float32)
    mask = np.ones(offsets[-1], dtype=bool)
    mask[last] = False
    cols[mask], vals[mask] = profiles.indices, profiles.data
    cols[last], vals[last] = profiles.dim, deg
    return RowSparse(offsets, cols, vals, profiles.dim + 1, reuse=True)  # multiplied on every step


def _shared_rows(profiles: ProfileMatrix, user: int, nodes: np.ndarray) -> "RowSparse":
    """``x_u ⊙ x_v`` for each candidate v, as a :class:`~graphrec.nn.sparse.RowSparse` ``[c, d]``."""
    from graphrec.nn.sparse import RowSparse

    who, cols, prod = profiles.shared_entries(profiles.dense_row(user), nodes)
    return RowSparse.from_entries(who, cols, prod.astype(np.float32), (nodes.size, profiles.dim))


def _batch_shared_rows(profiles: ProfileMatrix, users: np.ndarray, group: np.ndarray, nodes: np.ndarray) -> "RowSparse":
    """``x_u ⊙ x_v`` for many (user, candidate) rows at once, as a :class:`~graphrec.nn.sparse.RowSparse`:
    row ``i`` pairs user ``users[group[i]]`` with candidate ``nodes[i]``. Vectorised: the profile
    entries of all candidates are gathered in one ragged gather and multiplied by the users' values
    in the same columns, looked up in a dense ``[len(users), d]`` block (a batch has few users)."""
    from graphrec.nn.sparse import RowSparse

    dense = np.zeros((users.size, profiles.dim), dtype=np.float32)
    upos, uown = ragged_positions(profiles.indptr, users)
    dense[uown, profiles.indices[upos]] = profiles.data[upos]
    positions, row = ragged_positions(profiles.indptr, nodes)
    cols = profiles.indices[positions]
    prod = profiles.data[positions] * dense[group[row], cols]
    nz = np.flatnonzero(prod)
    return RowSparse.from_entries(row[nz], cols[nz], prod[nz], (nodes.size, profiles.dim))


@dataclass
class TrainingLists:
    """Every training group's candidate list, concatenated into flat arrays (built once).

    A *group* is one (round, user) pair: the user's friend-of-friend candidates on that round's
    message-passing graph, with the hidden friends as positives. Rows of group ``g`` are
    ``offsets[g]:offsets[g + 1]``. The shared-profile rows ``x_u ⊙ x_v`` are not stored: each
    batch computes its own (:func:`_batch_shared_rows`), which costs less than keeping them."""

    round: np.ndarray  # int64[G] supervision round of each group
    user: np.ndarray  # int64[G]
    offsets: np.ndarray  # int64[G + 1]
    nodes: np.ndarray  # int64[R] candidate of each row
    features: np.ndarray  # float32[R, F] raw pair features
    positive: np.ndarray  # bool[R]
    hard: np.ndarray  # bool[R]: among the group's ``hard_negatives`` best negatives by resource allocation

    def __post_init__(self) -> None:
        self.group_of_row = np.repeat(np.arange(self.num_groups), np.diff(self.offsets))

    @property
    def num_groups(self) -> int:
        return self.user.size


def _build_lists(rounds: "list[tuple[PairFeaturizer, np.ndarray, np.ndarray, np.ndarray]]", hard_negatives: int) -> TrainingLists:
    """Candidates and features of every (round, user) with a hidden friend among its
    friends-of-friends; ``rounds`` holds each round's featurizer, the hidden friendships as a CSR
    (``indptr``, ``indices``) and the users. Feature computation is per user
    (:class:`PairFeaturizer`, the same code serving runs); everything after it works on the
    concatenation. The users' personalized PageRank vectors (PPR pair features) on the round's
    message-passing graph are computed ``PPR_CHUNK`` users at a time in one truncated power
    iteration (:func:`~graphrec.tasks.linkpred.features.ppr_columns`)."""
    rnd: list[int] = []
    usr: list[int] = []
    nodes: list[np.ndarray] = []
    feats: list[np.ndarray] = []
    pos: list[np.ndarray] = []
    hard: list[np.ndarray] = []
    for r, (feat, held_ptr, held_idx, users) in enumerate(rounds):
        flag = np.zeros(feat.num_nodes, dtype=bool)
        walk_t = walk_transpose(feat.indptr, feat.indices).astype(np.float32)  # ppr_columns works in float32
        ppr = np.empty((0, 0))
        for i, u in enumerate(users.tolist()):
            if i % PPR_CHUNK == 0:  # the PPR of the next chunk of users, all in one power iteration
                ppr = ppr_columns(walk_t, list(users[i : i + PPR_CHUNK, None]))
            c = feat.candidates(u, ppr=ppr[:, i % PPR_CHUNK])
            if c.nodes.size == 0:
                continue
            hidden = held_idx[held_ptr[u] : held_ptr[u + 1]]
            flag[hidden] = True
            y = flag[c.nodes]
            flag[hidden] = False
            if not y.any():
                continue
            negatives = np.flatnonzero(~y)
            h = np.zeros(y.size, dtype=bool)
            if negatives.size <= hard_negatives:
                h[negatives] = True
            elif hard_negatives > 0:
                h[negatives[np.argsort(-c.ra[negatives], kind="stable")[:hard_negatives]]] = True
            rnd.append(r)
            usr.append(u)
            nodes.append(c.nodes)
            feats.append(c.features)
            pos.append(y)
            hard.append(h)
    offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.cumsum([x.size for x in nodes], out=offsets[1:])
    return TrainingLists(
        round=np.asarray(rnd, dtype=np.int64),
        user=np.asarray(usr, dtype=np.int64),
        offsets=offsets,
        nodes=np.concatenate(nodes) if nodes else np.empty(0, dtype=np.int64),
        features=np.concatenate(feats) if feats else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32),
        positive=np.concatenate(pos) if pos else np.zeros(0, dtype=bool),
        hard=np.concatenate(hard) if hard else np.zeros(0, dtype=bool),
    )


def sample_rows(lists: TrainingLists, negatives: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's rows: ``(rows, log_weight)``, rows in group order.

    Keeps every positive and every hard negative (``lists.hard``); of a group's other ``n_g``
    negatives each is kept independently with probability ``q_g = min(1, (negatives - h_g) / n_g)``
    (``h_g`` hard ones), about ``negatives`` negatives per group in all. A kept easy negative
    carries ``log_weight = -log q_g`` (its inverse inclusion probability), the rest 0, so the
    weighted partition function of :func:`~graphrec.nn.link_ranker.grouped_listwise_loss` is an
    unbiased estimate of the full list's. ``negatives <= 0`` keeps every row."""
    total = lists.positive.size
    if negatives <= 0:
        return np.arange(total, dtype=np.int64), np.zeros(total, dtype=np.float32)
    group = lists.group_of_row
    always = lists.positive | lists.hard
    easy = ~always
    n_easy = np.bincount(group[easy], minlength=lists.num_groups).astype(np.float64)
    n_hard = np.bincount(group[lists.hard], minlength=lists.num_groups).astype(np.float64)
    q = np.clip((negatives - n_hard) / np.maximum(n_easy, 1.0), 0.0, 1.0)
    keep = always | (easy & (rng.random(total) < q[group]))
    rows = np.flatnonzero(keep)
    log_weight = np.zeros(rows.size, dtype=np.float32)
    sampled = easy[rows]
    log_weight[sampled] = -np.log(q[group[rows[sampled]]]).astype(np.float32)
    return rows, log_weight


def _epoch_batches(lists: TrainingLists, batch_users: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The epoch's batches of group ids: the groups of each round shuffled and cut into batches
    of ``batch_users``, then the batches of all rounds shuffled together. A batch never mixes
    rounds, so each optimiser step runs the GCN on one message-passing graph only."""
    batches: list[np.ndarray] = []
    for r in np.unique(lists.round).tolist():
        groups = rng.permutation(np.flatnonzero(lists.round == r))
        batches += [groups[b : b + batch_users] for b in range(0, groups.size, batch_users)]
    return [batches[i] for i in rng.permutation(len(batches))]


def train_ranker(edges: np.ndarray, num_nodes: int, profiles: ProfileMatrix | None, config: LinkPredConfig) -> TrainResult:
    """Train a :class:`~graphrec.nn.link_ranker.LinkRanker` on the graph ``edges`` (index pairs,
    each friendship once; their order matters: the supervision splits permute it with a seed).

    Vectorised: the candidate lists of all groups are built once (:class:`TrainingLists`); each
    epoch subsamples negatives (:func:`sample_rows`, ``config.negatives``) and walks over batches
    of ``batch_users`` groups of one round (:func:`_epoch_batches`). A step gathers its rows with a
    ragged index (no loop over users), runs the GCN once on its round's graph, scores all rows in
    one forward pass and averages the listwise losses of its groups with segment reductions
    (:func:`~graphrec.nn.link_ranker.grouped_listwise_loss`)."""
    import torch

    from graphrec.nn.link_ranker import LinkRanker, grouped_listwise_loss
    from graphrec.threads import configure_torch

    start = time.perf_counter()
    torch.manual_seed(config.seed)
    configure_torch(config.threads)
    profiles = profiles if profiles is not None else ProfileMatrix.empty(num_nodes)
    use_profiles = profiles.dim > 0
    graphs: "list[tuple[torch.Tensor, RowSparse] | None]" = []
    rounds: list[tuple[PairFeaturizer, np.ndarray, np.ndarray, np.ndarray]] = []
    prep = progress("train linkpred: candidate lists", total=config.rounds, unit="round")
    for r in range(config.rounds):
        mp_edges, held = split_edges(edges, config.supervision_fraction, config.seed * 1000 + r + 1)
        indptr, indices = csr_from_edges(mp_edges, num_nodes)
        held_ptr, held_idx = csr_from_edges(held, num_nodes)
        users = np.flatnonzero(np.diff(held_ptr)).astype(np.int64)  # every user with a hidden friendship, ascending
        rng = np.random.default_rng(config.seed * 1000 + r + 101)
        if users.size > config.users_per_round:
            users = rng.choice(users, config.users_per_round, replace=False)
        rounds.append((PairFeaturizer(indptr, indices, profiles if use_profiles else None), held_ptr, held_idx, users))
        graphs.append((_norm_adj(indptr, indices, num_nodes), _node_inputs(profiles, indptr)) if config.gnn_dim else None)
        log.info("linkpred round %d/%d: %d supervision friendships hidden", r + 1, config.rounds, len(held))
        prep.update()
    prep.close()
    lists = _build_lists(rounds, config.hard_negatives)
    if lists.num_groups == 0:
        raise ValueError("no training signal: no held-out friendship closes a friend-of-friend pair (the graph is too small or has no triangles)")
    log.info("linkpred: %d training groups, %d candidate rows (%.1f s)", lists.num_groups, lists.nodes.size, time.perf_counter() - start)
    scaler = SCALING.fit(lists.features)

    model = LinkRanker(len(FEATURE_NAMES), profiles.dim, shared_rank=config.shared_rank, hidden=config.hidden, gnn_dim=config.gnn_dim)
    params = [{"params": [p for n, p in model.named_parameters() if not n.startswith("shared")], "weight_decay": config.weight_decay}]
    if model.shared is not None:
        params.append({"params": list(model.shared.parameters()), "weight_decay": config.shared_weight_decay})
    opt = torch.optim.Adam(params, lr=config.lr, foreach=True)
    # standardised per batch ((x - mean) / std in float32, what scaler.transform computes): a few
    # thousand rows a step instead of a copy of every row up front
    features_all = torch.from_numpy(np.ascontiguousarray(lists.features, dtype=np.float32))
    mean_t, std_t = torch.from_numpy(scaler.mean), torch.from_numpy(scaler.std)
    nodes_all = torch.from_numpy(lists.nodes)
    positive_all = torch.from_numpy(lists.positive)
    history: list[float] = []
    model.train()
    steps_per_epoch = sum(-(-count // config.batch_users) for count in np.bincount(lists.round).tolist())  # as _epoch_batches cuts them
    total_steps = steps_per_epoch * config.epochs
    avg_start = int(round(config.average_from * total_steps)) if config.average_from > 0 else None
    live = [p for p in model.state_dict().values() if p.is_floating_point()]
    averaged: list[torch.Tensor] | None = None
    avg_count = 0
    step = 0
    bar = progress("train linkpred", total=config.epochs, unit="epoch")
    for epoch in range(config.epochs):
        rng = np.random.default_rng(config.seed * 7919 + epoch)
        rows_epoch, log_weight_epoch = sample_rows(lists, config.negatives, rng)
        kept_offsets = np.zeros(lists.num_groups + 1, dtype=np.int64)
        np.cumsum(np.bincount(lists.group_of_row[rows_epoch], minlength=lists.num_groups), out=kept_offsets[1:])
        nodes_epoch = lists.nodes[rows_epoch]
        weights_epoch = torch.from_numpy(log_weight_epoch)
        total = 0.0
        for batch in _epoch_batches(lists, config.batch_users, rng):
            positions, owner = ragged_positions(kept_offsets, batch)
            rows = torch.from_numpy(rows_epoch[positions])
            group = torch.from_numpy(owner)
            graph = graphs[int(lists.round[batch[0]])]  # the batch's round (batches never mix rounds)
            h = None if graph is None else model.embed(graph[1], graph[0])
            users = lists.user[batch]
            shared = _batch_shared_rows(profiles, users, owner, nodes_epoch[positions]) if use_profiles else None
            cand = nodes_all[rows]
            scores = model((features_all[rows] - mean_t) / std_t, shared, None if h is None else h[torch.from_numpy(users)][group],
                           None if h is None else h[cand])
            loss = grouped_listwise_loss(scores, positive_all[rows], group, batch.size, weights_epoch[torch.from_numpy(positions)])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if avg_start is not None and step > avg_start:
                avg_count += 1
                with torch.no_grad():
                    if averaged is None:
                        averaged = [p.detach().clone() for p in live]
                    else:
                        torch._foreach_lerp_(averaged, live, 1.0 / avg_count)
            total += float(loss.detach()) * batch.size
        history.append(round(total / lists.num_groups, 5))
        log.info("linkpred epoch %d/%d: listwise loss %.5f", epoch + 1, config.epochs, history[-1])
        bar.update(info=f"loss {history[-1]:.4f}")
    bar.close()

    model.eval()
    if averaged is not None:
        with torch.no_grad():
            for p, a in zip(live, averaged):
                p.copy_(a)
    weights = _export(model, edges, num_nodes, profiles, config, scaler)
    seconds = time.perf_counter() - start
    log.info("linkpred ranker trained on %d groups in %.1f s", lists.num_groups, seconds)
    return TrainResult(weights, config, history, seconds, lists.num_groups)


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
