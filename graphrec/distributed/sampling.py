"""k-hop neighbourhood sampling over a partitioned snapshot, for mini-batch GNN training.

GraphSAGE (Hamilton et al., NeurIPS 2017) trains on mini-batches: for a batch of seed nodes, each
layer aggregates over at most ``fanout`` neighbours drawn uniformly without replacement, so a
batch costs ``O(batch * prod(fanouts))`` whatever the graph size. This module does that in pure
numpy/torch (pyg-lib and torch-sparse are not installable here), layer by layer as *blocks*
(DGL's message-flow graphs): for seeds ``S_0`` and fanouts ``[k_1, ..., k_L]``::

    hop h:  dst = S_{h-1},  src = S_h = S_{h-1} ∪ {sampled neighbours of S_{h-1}}   (k_h each)

Every hop samples afresh for all of its destinations (seeds included), and local ids put the
destinations first, so ``S_0 ⊆ S_1 ⊆ ... ⊆ S_L`` are prefixes of one node list (PyG
``NeighborLoader``'s convention) and a layer's ``h_dst`` is the first ``n_dst`` rows of its
``h_src``. :attr:`SampledBatch.blocks` is in layer order: ``blocks[0]`` is the input layer's
(``[|S_{L-1}|, |S_L|]``), ``blocks[-1]`` the last layer's (``[|S_0|, |S_1|]``). Each block's
``inv_deg`` is the inverse degree *in the block* (the mean over the sampled neighbours, as
GraphSAGE's estimator takes it).

Uniform sampling without replacement is Floyd's algorithm (Bentley & Floyd, CACM 1987),
vectorised over the frontier: for ``j = d - k, ..., d - 1`` draw ``t ~ U{0..j}`` and keep ``t``
unless it is already taken, else ``j``. That is ``k`` numpy steps per hop, each over all
frontier nodes at once, and reads only the ``k`` chosen entries of a hub's adjacency row.

Storage: :func:`prepare_adjacency` converts each partition's in-edges
(:func:`graphrec.distributed.partitions.read_edges`) once into ``<snapshot>/adjacency/indptr-<p>.npy``
and ``src-<p>.npy``; :class:`PartitionedAdjacency` opens them as memory maps, so a sampler reads
the rows of a batch's frontier from disk (the page cache), never the whole edge list into its heap.
Node inputs are likewise one ``float32`` ``.npy`` per split and partition
(:func:`inputs_path`), gathered by position through :class:`NodeInputs`.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from graphrec.distributed.partitions import PartitionManifest, read_edges, read_manifest
from graphrec.errors import InputError

#: folder of a snapshot holding the memory-mappable adjacency
ADJACENCY = "adjacency"
_DONE = "done.json"


def inputs_path(inputs_dir: str | Path, split: str, p: int) -> Path:
    """Where partition ``p``'s node inputs of ``split`` live: ``<inputs_dir>/x-<split>-<p>.npy``
    (``float32[rows of p, in_dim]``, rows in position order)."""
    return Path(inputs_dir) / f"x-{split}-{p}.npy"


def prepare_adjacency(snapshot_dir: str | Path) -> Path:
    """Write each partition's in-edges as memory-mappable ``indptr-<p>.npy`` (``int64[rows + 1]``)
    and ``src-<p>.npy`` (``int64``, global positions) under ``<snapshot_dir>/adjacency`` once; a
    complete folder (its ``done.json`` names the snapshot's revision and partitions) is reused.
    Holds one partition's edges at a time. Returns the folder."""
    manifest = read_manifest(snapshot_dir)
    final = Path(snapshot_dir) / ADJACENCY
    stamp = {"revision": manifest.revision, "bounds": manifest.bounds}
    try:
        if json.loads((final / _DONE).read_text()) == stamp:
            return final
    except (FileNotFoundError, ValueError):
        pass
    work = final.with_name(ADJACENCY + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    for p in range(manifest.partitions):
        indptr, src = read_edges(snapshot_dir, p)
        np.save(work / f"indptr-{p}.npy", indptr)
        np.save(work / f"src-{p}.npy", src)
        del indptr, src
    (work / _DONE).write_text(json.dumps(stamp))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return final


class PartitionedAdjacency:
    """The snapshot's adjacency as per-partition memory maps (:func:`prepare_adjacency` first).
    Rows are global positions; partition ``p`` holds the rows ``bounds[p] <= i < bounds[p + 1]``."""

    def __init__(self, snapshot_dir: str | Path) -> None:
        self.manifest: PartitionManifest = read_manifest(snapshot_dir)
        folder = Path(snapshot_dir) / ADJACENCY
        if not (folder / _DONE).exists():
            raise InputError(f"{folder}: no prepared adjacency (run prepare_adjacency on the snapshot first)")
        parts = range(self.manifest.partitions)
        self._indptr = [np.load(folder / f"indptr-{p}.npy", mmap_mode="r") for p in parts]
        self._src = [np.load(folder / f"src-{p}.npy", mmap_mode="r") for p in parts]
        self._bounds = np.asarray(self.manifest.bounds, dtype=np.int64)

    @property
    def num_nodes(self) -> int:
        return self.manifest.num_users

    def degrees(self, nodes: np.ndarray) -> np.ndarray:
        """``int64`` degree of each of ``nodes`` (global positions)."""
        start, _ = self._rows(nodes)
        return _degrees(start)

    def _rows(self, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(int64[m, 2]`` row start/stop within its partition's ``src``, owning partition)."""
        owner = self.manifest.partition_of(nodes)
        span = np.empty((nodes.size, 2), dtype=np.int64)
        for p in np.unique(owner).tolist():
            sel = np.flatnonzero(owner == p)
            local = nodes[sel] - self._bounds[p]
            span[sel, 0] = self._indptr[p][local]
            span[sel, 1] = self._indptr[p][local + 1]
        return span, owner

    def neighbours(self, nodes: np.ndarray, fanout: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``fanout`` distinct neighbours of each of ``nodes``, uniformly without
        replacement (all of them where the degree is at most ``fanout``, or ``fanout < 0``):
        ``(row, neighbour)`` pairs, ``row`` indexing ``nodes`` (ascending), ``neighbour`` a global
        position. The draws depend only on ``rng`` and the degrees, not on the partitioning."""
        nodes = np.asarray(nodes, dtype=np.int64)
        span, owner = self._rows(nodes)
        row, offset = sample_offsets(_degrees(span), fanout, rng)
        edge = span[row, 0] + offset
        out = np.empty(row.size, dtype=np.int64)
        edge_owner = owner[row]
        for p in np.unique(edge_owner).tolist():
            sel = np.flatnonzero(edge_owner == p)
            out[sel] = self._src[p][edge[sel]]
        return row, out


def _degrees(span: np.ndarray) -> np.ndarray:
    return span[:, 1] - span[:, 0]


def sample_offsets(degrees: np.ndarray, fanout: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """For each row ``i`` of degree ``d_i``, ``min(d_i, fanout)`` distinct offsets in ``[0, d_i)``
    drawn uniformly without replacement (all ``d_i`` when ``fanout < 0``): ``(row, offset)``
    sorted by row. Rows with ``d_i > fanout`` use Floyd's algorithm, ``fanout`` vectorised steps."""
    deg = np.asarray(degrees, dtype=np.int64)
    full = deg if fanout < 0 else np.minimum(deg, fanout)
    take_all = np.flatnonzero(deg == full)
    counts = deg[take_all]
    rows_all = np.repeat(take_all, counts)
    starts = np.cumsum(counts) - counts
    offs_all = np.arange(rows_all.size, dtype=np.int64) - np.repeat(starts, counts)
    part = np.flatnonzero(deg != full)
    if part.size == 0:
        return rows_all, offs_all
    d = deg[part]
    chosen = np.empty((part.size, fanout), dtype=np.int64)
    for step in range(fanout):
        j = d - fanout + step
        t = rng.integers(0, j + 1)
        taken = (chosen[:, :step] == t[:, None]).any(axis=1)
        chosen[:, step] = np.where(taken, j, t)
    rows = np.concatenate([rows_all, np.repeat(part, fanout)])
    offs = np.concatenate([offs_all, chosen.reshape(-1)])
    order = np.lexsort((offs, rows))
    return rows[order], offs[order]


@dataclass(frozen=True)
class Block:
    """One layer's message-flow graph: the binary ``adj`` ``[n_dst, n_src]`` (torch sparse CSR,
    local ids; destinations are the first ``n_dst`` sources) and ``inv_deg`` ``[n_dst, 1]``, the
    inverse sampled degree (0 for a destination with no neighbour)."""

    adj: torch.Tensor
    inv_deg: torch.Tensor

    @property
    def n_dst(self) -> int:
        return int(self.adj.shape[0])

    @property
    def n_src(self) -> int:
        return int(self.adj.shape[1])


@dataclass(frozen=True)
class SampledBatch:
    """A mini-batch: ``nodes`` (global positions of the input layer's sources; the seeds first,
    then each hop's new nodes) and the ``blocks`` in layer order (input layer first), whose
    destinations are prefixes of ``nodes``. The first ``num_seeds`` outputs are the seeds'."""

    nodes: np.ndarray
    blocks: list[Block]
    num_seeds: int


def _block(row: np.ndarray, col: np.ndarray, n_dst: int, n_src: int) -> Block:
    order = np.lexsort((col, row))
    crow = np.zeros(n_dst + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_dst), out=crow[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        adj = torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(np.ascontiguousarray(col[order])),
                                      torch.ones(row.size), size=(n_dst, n_src), check_invariants=False)
    deg = torch.from_numpy(np.diff(crow).astype(np.float32)).unsqueeze(1)
    inv_deg = torch.where(deg > 0, 1.0 / deg.clamp(min=1.0), torch.zeros_like(deg))
    return Block(adj, inv_deg)


def check_fanouts(fanouts: Sequence[int]) -> list[int]:
    """``fanouts`` as a list if every one is a positive integer or -1 (all neighbours), else an
    :class:`InputError`."""
    if not fanouts or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k == 0 or k < -1 for k in fanouts):
        raise InputError(f"fanouts must be positive integers or -1 (all neighbours), got {list(fanouts)!r}")
    return [int(k) for k in fanouts]


def sample_blocks(adjacency: PartitionedAdjacency, seeds: np.ndarray, fanouts: Sequence[int],
                  rng: np.random.Generator) -> SampledBatch:
    """The sampled ``len(fanouts)``-hop neighbourhood of ``seeds`` (distinct global positions);
    ``fanouts[h]`` neighbours per destination at hop ``h + 1`` from the seeds (``-1``: all), so
    the *last* layer uses ``fanouts[0]``. See the module docs.

    A hop that adds no new node gets one padding source (a copy of the first node, with no edge),
    so no block is square: :class:`graphrec.nn.bot_gnn.MeanSAGE` takes a square block for the
    whole symmetric adjacency."""
    nodes = np.asarray(seeds, dtype=np.int64).reshape(-1)
    n = adjacency.num_nodes
    if nodes.size == 0:
        raise InputError("sample_blocks: no seed nodes")
    if nodes.min() < 0 or nodes.max() >= n:
        raise InputError(f"sample_blocks: seed positions must be in [0, {n}), got {int(nodes.min())}..{int(nodes.max())}")
    if np.unique(nodes).size != nodes.size:
        raise InputError("sample_blocks: seed positions must be distinct")
    check_fanouts(fanouts)
    blocks: list[Block] = []
    for fanout in fanouts:
        n_dst = nodes.size
        row, nbr = adjacency.neighbours(nodes, int(fanout), rng)
        values, first, inverse = np.unique(np.concatenate([nodes, nbr]), return_index=True, return_inverse=True)
        fresh = np.flatnonzero(first >= n_dst)
        fresh = fresh[np.argsort(first[fresh], kind="stable")]  # new nodes in order of first appearance
        local = first.copy()  # an old node's local id is its place in nodes (first occurrence)
        local[fresh] = n_dst + np.arange(fresh.size)
        col = local[inverse[n_dst:]]
        added = values[fresh]
        if added.size == 0:
            added = nodes[:1]
        nodes = np.concatenate([nodes, added])
        blocks.append(_block(row, col, n_dst, nodes.size))
    blocks.reverse()
    return SampledBatch(nodes, blocks, int(np.asarray(seeds).size))


class NodeInputs:
    """One split's node inputs, ``x-<split>-<p>.npy`` per partition (:func:`inputs_path`),
    memory-mapped and gathered by global position."""

    def __init__(self, inputs_dir: str | Path, split: str, manifest: PartitionManifest) -> None:
        self.manifest = manifest
        self._parts = []
        for p in range(manifest.partitions):
            path = inputs_path(inputs_dir, split, p)
            try:
                x = np.load(path, mmap_mode="r")
            except FileNotFoundError:
                raise InputError(f"{path}: missing node inputs of split {split!r}, partition {p}") from None
            start, stop = manifest.range_of(p)
            if x.ndim != 2 or x.shape[0] != stop - start or x.dtype != np.float32:
                raise InputError(f"{path}: expected float32[{stop - start}, in_dim], got {x.dtype}{list(x.shape)}")
            self._parts.append(x)
        widths = {int(x.shape[1]) for x in self._parts}
        if len(widths) != 1:
            raise InputError(f"{inputs_dir}: split {split!r} has partitions of different input widths {sorted(widths)}")
        self.width = widths.pop()

    def gather(self, nodes: np.ndarray) -> np.ndarray:
        """``float32[len(nodes), width]``: the inputs of ``nodes`` (global positions), in order."""
        nodes = np.asarray(nodes, dtype=np.int64)
        owner = self.manifest.partition_of(nodes)
        out = np.empty((nodes.size, self.width), dtype=np.float32)
        for p in np.unique(owner).tolist():
            sel = np.flatnonzero(owner == p)
            out[sel] = self._parts[p][nodes[sel] - self.manifest.bounds[p]]
        return out


def write_inputs(inputs_dir: str | Path, split: str, manifest: PartitionManifest, x: np.ndarray) -> None:
    """Write the whole-graph node inputs ``x`` (``float32[n, in_dim]``, rows in position order)
    as one file per partition (:func:`inputs_path`); for a graph that fits one process (tests,
    the local engine). The distributed scoring writes each partition's file on its own."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] != manifest.num_users:
        raise InputError(f"write_inputs: x must be [{manifest.num_users}, in_dim], got {list(x.shape)}")
    Path(inputs_dir).mkdir(parents=True, exist_ok=True)
    for p in range(manifest.partitions):
        start, stop = manifest.range_of(p)
        np.save(inputs_path(inputs_dir, split, p), np.ascontiguousarray(x[start:stop]))
