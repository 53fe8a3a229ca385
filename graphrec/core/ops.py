"""Graph operators on a symmetric CSR adjacency (``indptr``/``indices``): the one place for the
random-walk and symmetric normalisations, diffusion, personalized PageRank, neighbour means and
the structural statistics every task uses. SciPy is imported inside the functions, so importing
this module stays cheap.

With ``A`` the adjacency and ``D`` the degree matrix:

* random walk ``P = D^-1 A`` (:func:`row_normalised`; rows of isolated nodes are zero);
* symmetric ``S = D^-1/2 A D^-1/2`` (:func:`sym_normalised`, Kipf & Welling 2017 without self-loops);
* diffusion ``F <- alpha S F + (1 - alpha) Y`` (:func:`diffuse`, Zhou et al. NIPS 2004);
* personalized PageRank ``r <- restart e + (1 - restart) P^T r`` (:func:`personalized_pagerank`,
  Page et al. 1999; Jeh & Widom 2003).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import scipy.sparse as sp

#: Columns of :func:`structural_features`.
STRUCTURAL_NAMES = ("log_degree", "clustering", "log_nbr_degree")


def row_normalised(indptr: np.ndarray, indices: np.ndarray, dtype: type = np.float32) -> "sp.csr_matrix":
    """The random-walk operator ``P = D^-1 A`` as a SciPy CSR matrix (zero rows for isolated nodes)."""
    import scipy.sparse as sp

    n = indptr.size - 1
    deg: np.ndarray = np.diff(indptr).astype(dtype)
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return sp.csr_matrix((np.repeat(inv, np.diff(indptr)), indices, indptr), shape=(n, n))


def sym_normalised(indptr: np.ndarray, indices: np.ndarray, *, work_dtype: type = np.float32) -> "sp.csr_matrix":
    """``S = D^-1/2 A D^-1/2`` as a float32 SciPy CSR matrix (zero rows for isolated nodes).

    ``work_dtype`` is the precision of the arithmetic (degrees, ``d^-1/2`` and the products
    ``d_i^-1/2 d_j^-1/2``) before the entries are stored as float32: float64 rounds each entry
    once instead of three times (the anomaly task's spectral codes use it)."""
    import scipy.sparse as sp

    n = indptr.size - 1
    deg: np.ndarray = np.diff(indptr).astype(work_dtype)
    inv = np.divide(1.0, np.sqrt(deg), out=np.zeros_like(deg), where=deg > 0)
    rows = np.repeat(np.arange(n), np.diff(indptr))
    return sp.csr_matrix(((inv[rows] * inv[indices]).astype(np.float32, copy=False), indices, indptr), shape=(n, n))


def walk_transpose(indptr: np.ndarray, indices: np.ndarray) -> "sp.csr_matrix":
    """``P^T`` in float64 CSR: the column-stochastic walk that :func:`personalized_pagerank` applies."""
    return row_normalised(indptr, indices, np.float64).T.tocsr()


def diffuse(s: "sp.csr_matrix", y: np.ndarray, alpha: float, iterations: int) -> np.ndarray:
    """``iterations`` steps of ``F <- alpha S F + (1 - alpha) Y`` from ``F = Y`` (float32)."""
    y = np.asarray(y, dtype=np.float32)
    f = y.copy()
    for _ in range(iterations):
        f = alpha * np.asarray(s @ f, dtype=np.float32) + (1 - alpha) * y
    return f


def personalized_pagerank(walk_t: "sp.csr_matrix", e: np.ndarray, *, restart: float, iterations: int = 30,
                          dtype: "type[np.floating[Any]]" = np.float64) -> np.ndarray:
    """Personalized PageRank for restart distribution(s) ``e`` (``[n]`` or ``[n, k]``, one column
    per source set): ``iterations`` steps of ``r <- restart e + (1 - restart) P^T r`` from ``r = e``,
    with ``walk_t`` from :func:`walk_transpose`, computed in ``dtype`` (float32 halves the time of
    the sparse-dense products, e.g. for pair features that only need a ranking)."""
    e = np.asarray(e, dtype=dtype)
    if walk_t.dtype != e.dtype:
        walk_t = walk_t.astype(e.dtype)
    r = e.copy()
    for _ in range(iterations):
        r = restart * e + (1 - restart) * (walk_t @ r)
    return np.asarray(r)


def neighbour_mean(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row ``i``: the mean of ``values`` over ``i``'s neighbours (0 for isolated nodes), float32."""
    return np.asarray(row_normalised(indptr, indices) @ values, dtype=np.float32)


def local_clustering(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """``float64[n]``: the exact local clustering coefficient ``t_i / (d_i (d_i - 1) / 2)`` of
    every node, with ``t_i = (A^2 ∘ A) 1 / 2`` its triangles (0 below degree 2). Costs
    ``O(sum d_i^2)``; :func:`structural_features` estimates it by sampling for large graphs."""
    import scipy.sparse as sp

    n = indptr.size - 1
    a = sp.csr_matrix((np.ones(indices.size, dtype=np.float64), indices, indptr), shape=(n, n))
    deg = np.diff(indptr)
    tri = np.asarray((a @ a).multiply(a).sum(axis=1)).ravel() / 2.0
    pairs = deg * (deg - 1) / 2.0
    return np.divide(tri, pairs, out=np.zeros(n), where=pairs > 0)


def structural_features(indptr: np.ndarray, indices: np.ndarray, *, pairs: int = 32, seed: int = 0) -> np.ndarray:
    """``float32[n, 3]``: the :data:`STRUCTURAL_NAMES` columns (log degree, clustering, log mean
    neighbour degree).

    Clustering is estimated from ``pairs`` neighbour pairs drawn uniformly with replacement per
    node (standard error at most ``0.5 / sqrt(pairs)``; :func:`sample_neighbour_pairs`, keyed by
    node, so a partitioned graph draws the same pairs); nodes with fewer than two neighbours get 0.
    """
    n = indptr.size - 1
    deg = np.diff(indptr)
    out = np.zeros((n, 3), dtype=np.float32)
    out[:, 0] = np.log1p(deg)
    if n == 0:
        return out
    rows = np.repeat(np.arange(n), deg)
    nbr_deg_sum = np.bincount(rows, weights=deg[indices].astype(np.float64), minlength=n)
    out[:, 2] = np.log1p(np.divide(nbr_deg_sum, deg, out=np.zeros(n), where=deg > 0))

    eligible = np.flatnonzero(deg >= 2)
    if eligible.size:
        keys = edge_keys(indptr, indices)
        hits = np.zeros(eligible.size, dtype=np.int64)
        chunk = max(1, 4_000_000 // pairs)
        for s in range(0, eligible.size, chunk):
            nodes = eligible[s : s + chunk]
            u, v = sample_neighbour_pairs(indptr, indices, nodes, nodes, pairs=pairs, seed=seed)
            q = u * n + v
            pos = np.searchsorted(keys, q)
            pos[pos >= keys.size] = 0
            hits[s : s + chunk] = (keys[pos] == q).sum(axis=1)
        out[eligible, 1] = hits / pairs
    return out


_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def hashed_uint64(keys: np.ndarray) -> np.ndarray:
    """SplitMix64 (Steele, Lea & Flood, OOPSLA 2014) of every ``uint64`` key: a counter-based
    random number generator. The draw for a key does not depend on which other keys are drawn or
    in what order, so one partition of a graph draws exactly what the whole-graph computation
    draws for the same nodes (the distributed engine's results equal the local engine's)."""
    z = np.asarray(keys, dtype=np.uint64) + _MIX[0]
    z = (z ^ (z >> np.uint64(30))) * _MIX[1]
    z = (z ^ (z >> np.uint64(27))) * _MIX[2]
    return z ^ (z >> np.uint64(31))


def sample_neighbour_pairs(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray, positions: np.ndarray, *,
                           pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` neighbour pairs ``(u, v)``, ``u != v`` positions in the row, drawn uniformly with
    replacement for each of ``rows`` (rows of the CSR ``indptr``/``indices``, each with at least
    two entries): two ``int64[len(rows), pairs]`` arrays of column ids.

    The draws are keyed by ``(seed, positions[i], pair)`` (:func:`hashed_uint64`), ``positions``
    being the rows' global node ids, so a partition's rows get the same pairs as in the whole graph."""
    rows = np.asarray(rows, dtype=np.int64)
    d = np.diff(indptr)[rows].astype(np.uint64)[:, None] if rows.size else np.zeros((0, 1), np.uint64)
    base = (np.asarray(positions, dtype=np.uint64)[:, None] << np.uint64(24)) + (np.arange(pairs, dtype=np.uint64) << np.uint64(1))[None, :]
    salt = hashed_uint64(np.asarray([seed], dtype=np.uint64))[0]
    a = hashed_uint64(base ^ salt) % d
    b = hashed_uint64((base + np.uint64(1)) ^ salt) % (d - np.uint64(1))
    b = b + (b >= a)  # a second, distinct neighbour
    start = indptr[rows][:, None]
    return indices[start + a.astype(np.int64)].astype(np.int64), indices[start + b.astype(np.int64)].astype(np.int64)


def edge_keys(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Sorted ``row * n + col`` keys of every adjacency entry (for membership tests by search)."""
    n = indptr.size - 1
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    keys = rows * n + indices.astype(np.int64)
    if keys.size > 1 and not np.all(keys[1:] >= keys[:-1]):
        keys = np.sort(keys)
    return keys
