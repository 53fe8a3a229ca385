"""Training the Siamese profile encoder from known friendships (and circles).

Positive pairs are friendships of the training graph plus pairs of members of the same social
circle (where the store has circles); each batch of positives also serves as the negatives of
every other pair (in-batch softmax, the default) or is paired with random users (contrastive
loss). Every ``hard_every`` epochs the current embeddings are indexed with FAISS and, for each
anchor, a user among its nearest neighbours who is not its friend becomes a *hard negative*
(mined from the index, as in ANCE, Xiong et al. 2021), which teaches the encoder what a
similar-but-not-friend profile looks like.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.core.index import EmbeddingIndex
from graphrec.core.scaling import ScalingRule, Standardiser
from graphrec.progress import progress
from graphrec.tasks.base import Task
from graphrec.tasks.siamese.config import LOSSES, SiameseConfig
from graphrec.tasks.siamese.model import SiameseModel
from graphrec.threads import configure_torch

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from graphrec.core.graph import Graph
    from graphrec.nn.siamese import ProfileEncoder

log = logging.getLogger(__name__)

#: The profile scaling rule of the encoder's inputs (see :mod:`graphrec.core.scaling`): binary
#: columns kept as they are, constant columns (std < 1e-6) centred, the others standardised.
SCALING = ScalingRule(binary="keep", min_std=1e-6)

#: Training batches are fed to the encoder as sparse rows when fewer than this share of the scaled
#: profile entries are non-zero (same function, first layer ``O(nnz)`` instead of dense).
SPARSE_BELOW = 0.1


@dataclass
class EncoderWeights:
    """Trained encoder as numpy arrays (a state dict), its scaler and its config."""

    config: SiameseConfig
    state: dict[str, np.ndarray]
    scaler: Standardiser
    in_dim: int
    history: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def module(self) -> "ProfileEncoder":
        """The trained encoder as a torch module, in evaluation mode."""
        import torch

        from graphrec.nn.siamese import ProfileEncoder

        enc = ProfileEncoder(self.in_dim, self.config.hidden, self.config.dim, self.config.dropout)
        enc.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in self.state.items()})
        enc.eval()
        return enc

    def embed(self, features: np.ndarray, batch: int = 65536) -> np.ndarray:
        """Unit-norm embeddings ``float32[n, dim]`` of profile rows (any user, seen or not)."""
        import torch

        enc = self.module()
        x = self.scaler.transform(features)
        out = np.empty((x.shape[0], self.config.dim), dtype=np.float32)
        with torch.no_grad():
            for s in range(0, x.shape[0], batch):
                out[s : s + batch] = enc(torch.from_numpy(x[s : s + batch])).numpy()
        return out

    def summary(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "train_loss": self.history, "seconds": round(self.seconds, 2)}


def positive_pairs(edges: np.ndarray, circles: list[np.ndarray], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Friendship pairs plus up to ``fraction * len(edges)`` random same-circle pairs."""
    pairs = [np.asarray(edges, dtype=np.int64).reshape(-1, 2)]
    members = [np.asarray(c, dtype=np.int64) for c in circles if len(c) >= 2]
    if members and fraction > 0:
        sizes = np.array([m.size for m in members], dtype=np.float64)
        weight = sizes * (sizes - 1)
        want = int(fraction * len(pairs[0]))
        which = rng.choice(len(members), size=want, p=weight / weight.sum())
        extra = np.empty((want, 2), dtype=np.int64)
        for i, c in enumerate(which.tolist()):
            extra[i] = rng.choice(members[c], size=2, replace=False)
        pairs.append(extra)
    return np.concatenate(pairs)


def train_encoder(features: np.ndarray, edges: np.ndarray, config: SiameseConfig, *, circles: list[np.ndarray] | None = None,
                  trainable: np.ndarray | None = None) -> EncoderWeights:
    """Train on ``edges`` (index pairs; positives) over profile rows ``features``.

    ``trainable`` (bool per row) restricts random and hard negatives to those rows (for the
    cold-start protocol the hidden users never appear in training at all)."""
    import torch

    from graphrec.nn.siamese import ProfileEncoder, contrastive_loss, in_batch_softmax_loss
    from graphrec.nn.sparse import RowSparse

    start = time.perf_counter()
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}")
    torch.manual_seed(config.seed)
    configure_torch(config.threads)
    rng = np.random.default_rng(config.seed)
    n = features.shape[0]
    scaler = SCALING.fit(features)
    scaled = scaler.transform(features)
    x = torch.from_numpy(scaled)
    # Sparse profiles (e.g. one-hot attributes) train through the encoder's sparse first layer.
    sparse = RowSparse.from_dense(scaled) if (scaled != 0).mean() < SPARSE_BELOW else None

    def rows(idx: np.ndarray) -> "torch.Tensor | RowSparse":  # noqa: F821
        return sparse.take(idx) if sparse is not None else x[idx]
    pool = np.flatnonzero(trainable) if trainable is not None else np.arange(n)
    pairs = positive_pairs(edges, circles or [], config.circle_pairs, rng)
    if pairs.shape[0] == 0:
        raise ValueError("no positive pairs: the store has no friendships")
    friend_keys = np.unique(np.concatenate([edges[:, 0] * n + edges[:, 1], edges[:, 1] * n + edges[:, 0]])) if len(edges) else np.empty(0, np.int64)
    enc = ProfileEncoder(x.shape[1], config.hidden, config.dim, config.dropout)
    log.info("siamese: training on %d users, %d positive pairs, %d epochs (%s loss)", n, len(pairs), config.epochs, config.loss)
    opt = torch.optim.AdamW(enc.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    hard: np.ndarray | None = None  # hard negative per row (-1: none)
    history = []
    bar = progress("train siamese", total=config.epochs, unit="epoch")
    for epoch in range(config.epochs):
        if config.hard_every and epoch > 0 and epoch % config.hard_every == 0:
            hard = _mine_hard(enc, x, pool, friend_keys, config.hard_rank, rng)
            log.debug("siamese: epoch %d, hard negatives mined for %d users", epoch + 1, int((hard >= 0).sum()))
        enc.train()
        order = rng.permutation(len(pairs))
        total = 0.0
        for s in range(0, len(order), config.batch_size):
            p = pairs[order[s : s + config.batch_size]]
            flip = rng.random(len(p)) < 0.5
            a, b = np.where(flip, p[:, 1], p[:, 0]), np.where(flip, p[:, 0], p[:, 1])
            za, zb = enc(rows(a)), enc(rows(b))
            extra, with_hard = None, None
            if hard is not None:
                with_hard = hard[a] >= 0
                if with_hard.any():
                    extra = enc(rows(hard[a][with_hard]))
            if config.loss == "in_batch":
                loss = (in_batch_softmax_loss(za, zb, config.temperature, extra) + in_batch_softmax_loss(zb, za, config.temperature)) / 2
            else:
                zn = enc(rows(rng.choice(pool, size=len(p))))
                loss = contrastive_loss(za, zb, torch.ones(len(p)), config.margin) + contrastive_loss(za, zn, torch.zeros(len(p)), config.margin)
                if extra is not None:
                    loss = loss + contrastive_loss(za[torch.from_numpy(with_hard)], extra, torch.zeros(extra.shape[0]), config.margin)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(p)
        history.append(round(total / len(pairs), 5))
        log.info("siamese: epoch %d/%d, loss %.5f", epoch + 1, config.epochs, history[-1])
        bar.update(info=f"loss {history[-1]:.4f}")
    bar.close()
    enc.eval()
    state = {k: v.detach().numpy().copy() for k, v in enc.state_dict().items()}
    return EncoderWeights(config, state, scaler, int(x.shape[1]), history, time.perf_counter() - start)


def _mine_hard(enc: "ProfileEncoder", x: "torch.Tensor", pool: np.ndarray, friend_keys: np.ndarray, rank: int,
               rng: np.random.Generator) -> np.ndarray:
    """For every row, one random non-friend among its ``rank`` nearest pool users (or -1), by an
    exact inner-product search of the (unit) embeddings over the pool."""
    import torch

    enc.eval()
    with torch.no_grad():
        z = enc(x).numpy()
    n = z.shape[0]
    # -1 pads the ids where the pool has fewer than rank + 1 users, as a FAISS search would.
    nn_ids = np.full((n, rank + 1), -1, dtype=np.int64)
    if pool.size:
        _, found = EmbeddingIndex.build(z[pool], exact=True, normalise=False).search(z, rank + 1)
        nn_ids[:, : found.shape[1]] = found
    cand = pool[np.clip(nn_ids, 0, pool.size - 1)]
    keys = np.arange(n)[:, None] * n + cand
    ok = (cand != np.arange(n)[:, None]) & (nn_ids >= 0)
    if friend_keys.size:
        ok &= ~np.isin(keys, friend_keys)
    pick = np.full(n, -1, dtype=np.int64)
    scores = rng.random(cand.shape) * ok
    best = np.argmax(scores, axis=1)
    has = ok.any(axis=1)
    pick[has] = cand[has, best[has]]
    return pick


class SiameseTask(Task[SiameseConfig, SiameseModel]):
    """The Siamese profile encoder as a task: trained on the graph's friendships and circles, it
    embeds every user from the profile alone, and the model carries a FAISS index of every
    user's embedding (keyed by external id) for similar-user and cold-start searches."""

    name = "siamese"
    kind = "siamese"
    config_type = SiameseConfig
    model_type = SiameseModel

    def fit(self, graph: "Graph", config: SiameseConfig) -> SiameseModel:
        """Train the encoder (:func:`train_encoder`) and index every user's embedding.

        The index's sync point is the time the graph's snapshot read started
        (``graph.data["read_at"]``, :attr:`Snapshot.read_at <graphrec.store.snapshot.Snapshot.read_at>`),
        so an incremental ``index sync`` also picks up users changed while the snapshot was read;
        a graph not read from a store is synced as of now."""
        from graphrec.store.schema import utcnow

        synced_at = graph.data.get("read_at") or utcnow().isoformat()
        if graph.num_nodes == 0 or graph.features.shape[1] == 0:
            raise ValueError("the store has no users with profile features")
        weights = train_encoder(graph.features, graph.edge_array(), config, circles=list(graph.circles))
        z = weights.embed(graph.features)
        ids = [graph.external_id(i) for i in range(graph.num_nodes)]
        index = EmbeddingIndex.build(z, ids)
        log.info("siamese: %d users embedded and indexed (%s) in %.1f s", len(ids), "exact" if index.exact else "HNSW", weights.seconds)
        return SiameseModel(weights.state, weights.scaler, list(graph.feature_names), training=weights.summary(), index=index,
                            index_synced_at=synced_at)
