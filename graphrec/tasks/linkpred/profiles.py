"""User profile vectors as a numpy CSR matrix, with the few pairwise products ranking needs.

Profiles are usually sparse (one-hot attributes: ego-Facebook has ~10 non-zeros in 1,406 columns),
so graphrec keeps them in CSR form end to end and never densifies the whole matrix.
"""

from __future__ import annotations

import numpy as np

from graphrec.core.graph import ragged_positions


class ProfileMatrix:
    """Row-sparse ``float32[n, d]`` profile matrix: ``indptr``, ``indices`` (columns), ``data``."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, dim: int) -> None:
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int64)
        self.data = np.asarray(data, dtype=np.float32)
        self.dim = int(dim)
        sq = np.bincount(np.repeat(np.arange(self.num_rows), np.diff(self.indptr)), weights=self.data.astype(np.float64) ** 2, minlength=self.num_rows)
        self.norms = np.sqrt(sq)

    @property
    def num_rows(self) -> int:
        return self.indptr.size - 1

    @classmethod
    def from_dense(cls, x: np.ndarray) -> "ProfileMatrix":
        x = np.asarray(x, dtype=np.float32)
        rows, cols = np.nonzero(x)
        indptr = np.zeros(x.shape[0] + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=x.shape[0]), out=indptr[1:])
        return cls(indptr, cols.astype(np.int64), x[rows, cols], x.shape[1])

    @classmethod
    def empty(cls, rows: int) -> "ProfileMatrix":
        return cls(np.zeros(rows + 1, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32), 0)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.data[lo:hi]

    def dense_row(self, i: int) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float32)
        cols, vals = self.row(i)
        out[cols] = vals
        return out

    def shared_entries(self, user_vector: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Non-zero entries of ``x_u ⊙ x_v`` for each v in ``nodes``: (position in ``nodes``,
        column, value)."""
        positions, owner = ragged_positions(self.indptr, nodes)
        cols = self.indices[positions]
        prod = self.data[positions] * user_vector[cols]
        nz = np.flatnonzero(prod)
        return owner[nz], cols[nz], prod[nz]

    def pair_terms(self, user_vector: np.ndarray, nodes: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """For each node v: ``x_u·x_v``, the count of columns non-zero in both, and, when
        ``weights`` (``[d, r]``) is given, ``(x_u ⊙ x_v) @ weights`` (``[len(nodes), r]``)."""
        who, cols, prod = self.shared_entries(user_vector, nodes)
        dots = np.bincount(who, weights=prod, minlength=nodes.size)
        shared = np.bincount(who, minlength=nodes.size).astype(np.float64)
        weighted = None
        if weights is not None:
            contrib = prod[:, None] * weights[cols]
            weighted = np.stack([np.bincount(who, weights=contrib[:, j], minlength=nodes.size) for j in range(weights.shape[1])], axis=1) if weights.shape[1] else np.zeros((nodes.size, 0))
        return dots, shared, weighted
