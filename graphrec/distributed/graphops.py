"""One partition's share of every graph operation the distributed scoring needs.

A :class:`PartitionWorker` holds partition ``p`` of a partitioned snapshot
(:mod:`graphrec.distributed.partitions`): its users and its in-edges, split into one CSR block
``A[p, q]`` per source partition ``q`` (rows: ``p``'s users; columns: ``q``'s users). Every
operation over the whole graph is then a sum of block products, with the source partitions'
values fetched one at a time::

    (A x)_p = sum_q A[p, q] x_q

so a worker's memory is its own rows, its own blocks and one source partition's values at a time,
whatever the size of the graph. The block values repeat the local operators' float32 entries
exactly (:func:`graphrec.core.ops.row_normalised`, :func:`~graphrec.core.ops.sym_normalised`),
so a partitioned result differs from the local one only by the order of float32 additions.

The worker knows nothing about Ray: ``fetch(q)`` is how it reads partition ``q``'s values (a Ray
object in :mod:`graphrec.distributed.cluster`, a list element in tests).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from graphrec.distributed.partitions import read_degrees, read_edges, read_manifest, read_users

Fetch = Callable[[int], np.ndarray]


class PartitionWorker:
    """Partition ``p`` of the snapshot under ``directory`` (see the module docs)."""

    def __init__(self, directory: str | Path, p: int) -> None:
        import scipy.sparse as sp

        self.directory = Path(directory)
        self.p = p
        self.manifest = read_manifest(directory)
        self.start, self.stop = self.manifest.range_of(p)
        self.rows = self.stop - self.start
        self.users = read_users(directory, p)
        indptr, src = read_edges(directory, p)
        self.deg = np.diff(indptr)
        row_of = np.repeat(np.arange(self.rows, dtype=np.int64), self.deg)
        bounds = self.manifest.bounds
        owner = self.manifest.partition_of(src)
        # entries are sorted by (row, src), so each source partition's entries keep row order
        self._entries: list[tuple[np.ndarray, np.ndarray]] = []  # per q: (row, local column)
        self.blocks: list[Any] = []  # binary CSR A[p, q], float32
        for q in range(self.manifest.partitions):
            sel = np.flatnonzero(owner == q)
            r, c = row_of[sel], src[sel] - bounds[q]
            ptr = np.zeros(self.rows + 1, dtype=np.int64)
            np.cumsum(np.bincount(r, minlength=self.rows), out=ptr[1:])
            self._entries.append((r, c))
            self.blocks.append(sp.csr_matrix((np.ones(sel.size, np.float32), c, ptr), shape=(self.rows, bounds[q + 1] - bounds[q])))
        self._walk: list[Any] = []
        self._sym: list[Any] = []
        self._keys: np.ndarray | None = None
        self._private_peak = 0.0
        self._csr: tuple[np.ndarray, np.ndarray] | None = None
        self._normalise()

    # -- operators -----------------------------------------------------------------------------
    def sample_memory(self) -> None:
        """Record this process's private memory now (its peak is kept: the kernel keeps only the
        peak of private and shared memory together)."""
        from graphrec.distributed.engine import process_memory_mib

        self._private_peak = max(self._private_peak, process_memory_mib().get("private", 0.0))

    def memory_mib(self) -> dict[str, float]:
        """This worker's memory in MiB: ``private_peak`` (its own allocations, highest seen at the
        end of a stage call or of a block product), ``peak`` (``VmHWM``: private and the object
        store's shared pages it touched, together) and ``shared`` now."""
        from graphrec.distributed.engine import process_memory_mib

        self.sample_memory()
        now = process_memory_mib()
        return {"private_peak": self._private_peak, "peak": now.get("peak", 0.0), "shared": now.get("shared", 0.0)}

    def bounds(self) -> tuple[int, int]:
        """The positions ``[start, stop)`` this partition owns."""
        return self.start, self.stop

    def degrees(self) -> np.ndarray:
        """``int64[rows]``: the degree of each of the partition's users."""
        return self.deg

    def _normalise(self) -> None:
        """Build the walk ``D^-1 A`` and symmetric ``D^-1/2 A D^-1/2`` blocks (the symmetric one
        reads each source partition's degrees, one partition at a time)."""
        import scipy.sparse as sp

        deg32 = self.deg.astype(np.float32)
        inv = np.divide(1.0, deg32, out=np.zeros_like(deg32), where=deg32 > 0)
        inv_sqrt = np.divide(1.0, np.sqrt(deg32), out=np.zeros_like(deg32), where=deg32 > 0)
        for q, block in enumerate(self.blocks):
            r, c = self._entries[q]
            src_deg = read_degrees(self.directory, q).astype(np.float32)
            src_inv_sqrt = np.divide(1.0, np.sqrt(src_deg), out=np.zeros_like(src_deg), where=src_deg > 0)
            self._walk.append(sp.csr_matrix((inv[r], block.indices, block.indptr), shape=block.shape))
            self._sym.append(sp.csr_matrix(((inv_sqrt[r] * src_inv_sqrt[c]).astype(np.float32, copy=False), block.indices, block.indptr),
                                           shape=block.shape))
        self._entries = []

    def product(self, operator: str, fetch: Fetch, *, dtype: type = np.float32) -> np.ndarray:
        """``(M x)_p = sum_q M[p, q] x_q`` for ``operator`` ``binary`` (``A``), ``walk``
        (``D^-1 A``) or ``sym`` (``D^-1/2 A D^-1/2``), ``x_q = fetch(q)`` (``[n_q]`` or
        ``[n_q, k]``), accumulated in ``dtype``."""
        blocks = {"binary": self.blocks, "walk": self._walk, "sym": self._sym}[operator]
        out: np.ndarray | None = None
        for q, block in enumerate(blocks):
            x = fetch(q)
            if block.nnz == 0:
                if out is None:
                    out = np.zeros((self.rows, *x.shape[1:]), dtype=dtype)
                continue
            part: np.ndarray = np.asarray(block.astype(dtype, copy=False) @ x.astype(dtype, copy=False), dtype=dtype)
            out = part if out is None else out + part
            del x
            self.sample_memory()
        assert out is not None
        return out

    def edge_membership(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """``bool``: whether ``v`` (global position) is a friend of ``u`` (a position this
        partition owns), for each query pair."""
        n = self.manifest.num_users
        if self._keys is None:  # built once: the sorted ``row * n + column`` key of every entry
            indptr, cols = self.global_csr()
            self._keys = np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(indptr)) * n + cols
        keys = self._keys
        q = (u - self.start) * n + v
        pos = np.searchsorted(keys, q)
        pos[pos >= keys.size] = 0
        return keys[pos] == q if keys.size else np.zeros(q.size, dtype=bool)

    # -- the row-wise (CSR over the partition's rows, global columns) view --------------------
    def global_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """The partition's rows as a CSR with global column positions, sorted per row (built
        once)."""
        if self._csr is not None:
            return self._csr
        cols = np.concatenate([b.indices.astype(np.int64) + self.manifest.bounds[q] for q, b in enumerate(self.blocks)])
        rows = np.concatenate([np.repeat(np.arange(self.rows, dtype=np.int64), np.diff(b.indptr)) for b in self.blocks])
        order = np.lexsort((cols, rows))
        indptr = np.zeros(self.rows + 1, dtype=np.int64)
        np.cumsum(self.deg, out=indptr[1:])
        self._csr = (indptr, cols[order])
        return self._csr
