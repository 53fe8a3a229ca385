"""The graph container (:class:`Graph`) and numpy CSR helpers shared by every task and by serving.

Serving must not import torch, torch_geometric or scipy (start-up time), so the neighbourhood
arithmetic lives here in plain numpy. A graph is ``indptr``/``indices`` of a symmetric adjacency
without self-loops; node ``i``'s neighbours are ``indices[indptr[i]:indptr[i+1]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from graphrec.store.snapshot import Snapshot


def csr_from_edges(edges: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR (sorted rows) from undirected edges ``int[m, 2]`` given once each."""
    from graphrec.store.snapshot import symmetric_csr

    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    return symmetric_csr(e[:, 0], e[:, 1], num_nodes)


def profile_at_width(features: np.ndarray, width: int) -> np.ndarray:
    """A profile row at a model's width: its first ``width`` columns, zero-padded when shorter
    (``float32[width]``).

    Feature columns are only ever appended to the store, so a model trained on ``width`` columns
    reads exactly the columns it was trained on, whatever the store's width is now."""
    out = np.zeros(width, dtype=np.float32)
    m = min(width, features.size)
    out[:m] = features[:m]
    return out


def ragged_positions(indptr: np.ndarray, nodes: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions of the CSR rows ``nodes`` (concatenated) and, aligned, the position in
    ``nodes`` each came from. Vectorised ragged gather, no Python loop. ``max_len`` keeps only
    the first ``max_len`` entries of each row."""
    nodes = np.asarray(nodes, dtype=np.int64)
    starts = indptr[nodes]
    lens = indptr[nodes + 1] - starts
    if max_len is not None:
        lens = np.minimum(lens, max_len)
    total = int(lens.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    owner = np.repeat(np.arange(nodes.size), lens)
    offsets = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return starts[owner] + offsets, owner


def gather_neighbors(indptr: np.ndarray, indices: np.ndarray, nodes: np.ndarray, max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated neighbour lists of ``nodes`` (each cut to ``max_len``) and, aligned, which of
    ``nodes`` each came from."""
    positions, owner = ragged_positions(indptr, nodes, max_len)
    return indices[positions], owner


@dataclass
class TwoHop:
    """Friends-of-friends of one user with the classic neighbourhood scores.

    ``candidates`` excludes the user and its current friends. For candidate ``v`` and common
    neighbours ``w``: CN = |N(u) ∩ N(v)|; Adamic-Adar AA = Σ 1/log d(w) (Adamic & Adar 2003);
    resource allocation RA = Σ 1/d(w) (Zhou, Lü & Zhang 2009).
    """

    candidates: np.ndarray
    cn: np.ndarray
    aa: np.ndarray
    ra: np.ndarray


def two_hop(
    indptr: np.ndarray,
    indices: np.ndarray,
    user: int,
    degrees: np.ndarray | None = None,
    *,
    friends: np.ndarray | None = None,
    max_fanout: int | None = None,
) -> TwoHop:
    """Candidates two hops from ``user`` with CN, AA and RA scores (numpy, O(Σ_w d(w))).

    ``friends`` overrides the user's friend list (live friends, or a user not in the graph:
    ``user=-1``); ``max_fanout`` expands at most that many neighbours of each friend.
    """
    deg = np.diff(indptr) if degrees is None else degrees
    if friends is None:
        friends = indices[indptr[user] : indptr[user + 1]] if 0 <= user < indptr.size - 1 else np.empty(0, dtype=np.int64)
    friends = np.asarray(friends, dtype=np.int64)
    reach, owner = gather_neighbors(indptr, indices, friends, max_fanout)
    if reach.size == 0:
        e = np.empty(0)
        return TwoHop(np.empty(0, dtype=np.int64), e, e, e)
    dv = deg[friends[owner]].astype(np.float64)
    n = indptr.size - 1
    if reach.size * 8 >= n:
        # Dense counts over all nodes: no sort (a user next to hubs reaches thousands of
        # paths); the sums are taken in the same order as the sorted path below, so both agree exactly.
        cn_all = np.bincount(reach, minlength=n)
        cand = np.flatnonzero(cn_all)
        cn = cn_all[cand].astype(np.float64)
        aa = np.bincount(reach, weights=1.0 / np.log(np.maximum(dv, 2.0)), minlength=n)[cand]
        ra = np.bincount(reach, weights=1.0 / np.maximum(dv, 1.0), minlength=n)[cand]
    else:
        cand, inv = np.unique(reach, return_inverse=True)
        cn = np.bincount(inv, minlength=cand.size).astype(np.float64)
        aa = np.bincount(inv, weights=1.0 / np.log(np.maximum(dv, 2.0)), minlength=cand.size)
        ra = np.bincount(inv, weights=1.0 / np.maximum(dv, 1.0), minlength=cand.size)
    keep = cand != user
    if friends.size:
        is_friend = np.zeros(n, dtype=bool)
        is_friend[friends] = True
        keep &= ~is_friend[cand]
    return TwoHop(cand[keep], cn[keep], aa[keep], ra[keep])


@dataclass
class Graph:
    """The one graph container every task trains and scores on.

    An undirected graph as a symmetric CSR adjacency (``indptr``/``indices``, each friendship in
    both rows, no self-loops), a ``float32[n, d]`` feature row per node named ``feature_names``,
    and optionally what a store snapshot adds: external ids, current labels, synthetic flags,
    circles and the data version (store revision, fingerprint) the graph was read at.

    Build it from a :class:`~graphrec.store.snapshot.Snapshot` (:meth:`from_snapshot`) or from
    an edge list (:meth:`from_edges`, for generated and benchmark graphs).
    """

    indptr: np.ndarray
    indices: np.ndarray
    features: np.ndarray
    feature_names: list[str] = field(default_factory=list)
    external_ids: np.ndarray | None = None
    labels: np.ndarray | None = None
    is_synthetic: np.ndarray | None = None
    circles: list[np.ndarray] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        if self.features.ndim != 2:
            raise ValueError(f"features must be a 2-d array, got shape {self.features.shape}")
        n = self.features.shape[0]
        if self.indptr.size != n + 1:
            raise ValueError(f"adjacency has {self.indptr.size - 1} rows but features have {n}")
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise ValueError("adjacency refers to nodes outside 0..n-1")
        if not np.isfinite(self.features).all():
            row = int(np.flatnonzero(~np.isfinite(self.features).all(axis=1))[0])
            raise ValueError(f"features of node {row} are not finite (NaN or infinity)")
        if not self.feature_names:
            self.feature_names = [f"f{j}" for j in range(self.features.shape[1])]
        for name in ("external_ids", "labels", "is_synthetic"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} nodes")

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_snapshot(cls, snap: "Snapshot", *, data_version: bool = True) -> "Graph":
        """The graph of a store snapshot, with its ids, labels, flags, circles and (unless
        ``data_version=False``: it hashes the whole snapshot) its data version."""
        return cls(
            snap.indptr,
            snap.indices,
            snap.features,
            list(snap.feature_names),
            external_ids=snap.external_ids,
            labels=snap.labels,
            is_synthetic=snap.is_synthetic,
            circles=[c.members for c in snap.circles],
            data=snap.data_version() if data_version else {"revision": snap.revision, "read_at": snap.read_at_iso()},
        )

    @classmethod
    def from_edges(
        cls,
        edges: np.ndarray,
        features: np.ndarray | None = None,
        feature_names: list[str] | None = None,
        *,
        num_nodes: int | None = None,
        labels: np.ndarray | None = None,
    ) -> "Graph":
        """A graph from undirected edges ``int[m, 2]`` (each once) and optional features (default:
        no feature columns; ``num_nodes`` is then required)."""
        if features is None:
            if num_nodes is None:
                raise ValueError("give features or num_nodes")
            features = np.zeros((num_nodes, 0), dtype=np.float32)
        n = int(np.asarray(features).shape[0])
        indptr, indices = csr_from_edges(np.asarray(edges, dtype=np.int64).reshape(-1, 2), n)
        return cls(indptr, indices, features, list(feature_names or []), labels=labels)

    # -- views -------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of undirected friendships."""
        return int(self.indices.size // 2)

    @property
    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def binary(self) -> bool:
        """Whether every feature is 0 or 1 (then reconstruction uses a Bernoulli likelihood)."""
        f = self.features
        return bool(f.size) and bool(np.all((f == 0) | (f == 1)))

    def neighbors(self, node: int) -> np.ndarray:
        return self.indices[self.indptr[node] : self.indptr[node + 1]]

    def edge_array(self) -> np.ndarray:
        """Undirected edges once each, ``int64[m, 2]`` with ``u < v``."""
        from graphrec.store.snapshot import edge_array

        return edge_array(self.indptr, self.indices)

    def external_id(self, node: int) -> str:
        """External id of a node (its index as text when the graph has no ids)."""
        return str(node) if self.external_ids is None else str(self.external_ids[node])
