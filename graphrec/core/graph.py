"""Numpy CSR graph helpers shared by training, evaluation and serving.

Serving must not import torch, torch_geometric or scipy (start-up time), so the neighbourhood
arithmetic lives here in plain numpy. A graph is ``indptr``/``indices`` of a symmetric adjacency
without self-loops; node ``i``'s neighbours are ``indices[indptr[i]:indptr[i+1]]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def csr_from_edges(edges: np.ndarray, num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric CSR (sorted rows) from undirected edges ``int[m, 2]`` given once each."""
    e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    rows = np.concatenate([e[:, 0], e[:, 1]])
    cols = np.concatenate([e[:, 1], e[:, 0]])
    order = np.lexsort((cols, rows))
    indptr = np.zeros(num_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_nodes), out=indptr[1:])
    return indptr, cols[order]


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
    cand, inv = np.unique(reach, return_inverse=True)
    cn = np.bincount(inv, minlength=cand.size).astype(np.float64)
    aa = np.bincount(inv, weights=1.0 / np.log(np.maximum(dv, 2.0)), minlength=cand.size)
    ra = np.bincount(inv, weights=1.0 / np.maximum(dv, 1.0), minlength=cand.size)
    keep = cand != user
    if friends.size:
        keep &= ~np.isin(cand, friends)
    return TwoHop(cand[keep], cn[keep], aa[keep], ra[keep])
