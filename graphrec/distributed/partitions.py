"""The store streamed into Parquet partitions: the snapshot the distributed stages read.

One consistent read (:meth:`GraphStore.stream <graphrec.store.store.GraphStore.stream>`, keyset
pagination in one repeatable-read transaction) is written as ``partitions`` contiguous ranges of
users, so no process ever holds the whole edge list::

    <dir>/manifest.json              revision, sizes, feature names, partition bounds
    <dir>/users/part-00003.parquet   position, user_id, external_id, is_synthetic, label, features
    <dir>/edges/part-00003.parquet   dst, src: every friendship of the partition's users, both
                                     directions, sorted by (dst, src)
    <dir>/degrees/part-00003.npy     int64 degree of each of the partition's users (what another
                                     partition needs to normalise its edges to these users)

A user's **position** is its index among the active users in internal-id order: the node index
of :meth:`GraphStore.snapshot <graphrec.store.store.GraphStore.snapshot>` at the same revision, so
a partitioned result lines up with the local engine's arrays. Partition ``p`` owns positions
``bounds[p] <= i < bounds[p + 1]`` (user-id ranges of near-equal size); its edge file holds the
edges whose ``dst`` it owns, so one partition's in-edges (the rows of its adjacency block) are one
file, and a layer of message passing reads one edge file per partition.

Memory: the writer holds one chunk of the stream, the ``int64`` array of all user ids (8 bytes a
user, to turn internal ids into positions) and, while finishing, one partition's edges.
Friendships are spilled per destination partition to ``.npy`` chunks first and each partition is
sorted and written on its own.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphrec.store.stream import UserChunk

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from graphrec.store.store import GraphStore

FORMAT = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class PartitionManifest:
    """What a partitioned snapshot holds: the store ``revision`` it was read at, ``num_users``,
    ``num_friendships`` (undirected), the ``feature_names`` (the width of every ``features`` row),
    ``bounds`` (``partitions + 1`` positions) and how many users are ``labelled``."""

    revision: int
    num_users: int
    num_friendships: int
    feature_names: list[str]
    bounds: list[int]
    labelled: int = 0
    format: int = FORMAT

    @property
    def partitions(self) -> int:
        return len(self.bounds) - 1

    def range_of(self, p: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` partition ``p`` owns."""
        return self.bounds[p], self.bounds[p + 1]

    def partition_of(self, positions: np.ndarray) -> np.ndarray:
        """The partition owning each position."""
        return np.searchsorted(np.asarray(self.bounds[1:-1], dtype=np.int64), positions, side="right")


@dataclass(frozen=True)
class UserPartition:
    """One partition's users: ``positions`` (``int64``, contiguous), ``user_ids``, ``external_ids``
    (``object``), ``is_synthetic``, ``labels`` (``object``, None where unlabelled) and
    ``features`` (``float32[rows, d]``)."""

    positions: np.ndarray
    user_ids: np.ndarray
    external_ids: np.ndarray
    is_synthetic: np.ndarray
    labels: np.ndarray
    features: np.ndarray


def read_manifest(directory: str | Path) -> PartitionManifest:
    """The manifest of a partitioned snapshot, checked for its format."""
    path = Path(directory) / MANIFEST
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        from graphrec.errors import InputError

        raise InputError(f"{path}: no partitioned snapshot here (write one with write_partitions)") from None
    if raw.get("format") != FORMAT:
        from graphrec.errors import InputError

        raise InputError(f"{path}: partition format {raw.get('format')!r}, this graphrec reads format {FORMAT}")
    return PartitionManifest(**raw)


def _part(directory: Path, kind: str, p: int) -> Path:
    return directory / kind / f"part-{p:05d}.parquet"


def partition_bounds(n: int, partitions: int) -> list[int]:
    """``partitions + 1`` positions splitting ``n`` users into near-equal contiguous ranges."""
    if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
        from graphrec.errors import InputError

        raise InputError(f"partitions must be a positive integer, got {partitions!r}")
    return [int(b) for b in np.linspace(0, n, partitions + 1).round().astype(np.int64)]


def _user_table(positions: np.ndarray, chunk: Any, labels: np.ndarray, width: int) -> "pa.Table":
    import pyarrow as pa

    feats = np.ascontiguousarray(chunk.features, dtype=np.float32).reshape(-1)
    return pa.table({
        "position": pa.array(positions, pa.int64()),
        "user_id": pa.array(chunk.user_ids, pa.int64()),
        "external_id": pa.array(chunk.external_ids.tolist(), pa.string()),
        "is_synthetic": pa.array(chunk.is_synthetic, pa.bool_()),
        "label": pa.array(labels.tolist(), pa.string()),
        "features": pa.FixedSizeListArray.from_arrays(pa.array(feats, pa.float32()), width) if width else
        pa.array([[] for _ in range(len(positions))], pa.list_(pa.float32(), 0)),
    })


def write_partitions(store: "GraphStore", directory: str | Path, partitions: int | Callable[[int], int], *, user_chunk: int = 100_000,
                     friendship_chunk: int = 1_000_000) -> PartitionManifest:
    """Stream the store's active users and friendships into ``partitions`` Parquet partitions
    under ``directory`` (``partitions`` may be a function of the user count, read in the same
    transaction; the directory is replaced if it exists; written to ``<directory>.tmp`` and renamed, so a
    reader sees a whole snapshot or none). Returns the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    final = Path(directory)
    work = final.with_name(final.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    (work / "users").mkdir(parents=True)
    (work / "edges").mkdir()
    (work / "degrees").mkdir()
    spill = work / "spill"
    spill.mkdir()
    with store.stream() as graph:
        n = graph.count_users()
        if callable(partitions):  # decided from the user count of this same read
            partitions = partitions(n)
        bounds = partition_bounds(n, partitions)
        manifest_bounds = np.asarray(bounds, dtype=np.int64)
        label_ids, label_values = graph.labels()
        width = len(graph.feature_names)
        all_ids = np.empty(n, dtype=np.int64)
        writers: dict[int, Any] = {}
        seen = labelled = 0
        try:
            for chunk in graph.users(user_chunk):
                rows = chunk.user_ids.size
                if seen + rows > n:
                    raise RuntimeError("more users streamed than counted in the same transaction")
                positions = np.arange(seen, seen + rows, dtype=np.int64)
                all_ids[seen: seen + rows] = chunk.user_ids
                labels = np.full(rows, None, dtype=object)
                at = np.searchsorted(label_ids, chunk.user_ids)
                hit = at < label_ids.size
                hit[hit] &= label_ids[at[hit]] == chunk.user_ids[hit]
                labels[hit] = label_values[at[hit]]
                labelled += int(hit.sum())
                table = _user_table(positions, chunk, labels, width)
                owner = np.searchsorted(manifest_bounds[1:-1], positions, side="right")
                for p in np.unique(owner).tolist():
                    sel = np.flatnonzero(owner == p)
                    if p not in writers:
                        writers[p] = pq.ParquetWriter(_part(work, "users", p), table.schema)
                    writers[p].write_table(table.take(pa.array(sel)))
                seen += rows
        finally:
            for w in writers.values():
                w.close()
        if seen != n:
            raise RuntimeError(f"{seen} users streamed, {n} counted in the same transaction")
        friendships = 0
        spills: dict[int, int] = {}
        for fchunk in graph.friendships(friendship_chunk):
            lo = np.searchsorted(all_ids, fchunk.user_lo)
            hi = np.searchsorted(all_ids, fchunk.user_hi)
            friendships += lo.size
            dst = np.concatenate([lo, hi])
            src = np.concatenate([hi, lo])
            owner = np.searchsorted(manifest_bounds[1:-1], dst, side="right")
            order = np.argsort(owner, kind="stable")
            cuts = np.searchsorted(owner[order], np.arange(partitions + 1))
            for p in range(partitions):
                sel = order[cuts[p]: cuts[p + 1]]
                if sel.size:
                    k = spills.get(p, 0)
                    np.save(spill / f"{p:05d}-{k:06d}.npy", np.stack([dst[sel], src[sel]]))
                    spills[p] = k + 1
        revision, feature_names = graph.revision, list(graph.feature_names)
    del all_ids
    schema = pa.schema([("dst", pa.int64()), ("src", pa.int64())])
    for p in range(partitions):
        start, stop = bounds[p], bounds[p + 1]
        if not _part(work, "users", p).exists():  # an empty range still gets its (empty) file
            empty = _user_table(np.empty(0, np.int64), UserChunk(np.empty(0, np.int64), np.empty(0, dtype=object),
                                                                 np.empty((0, width), np.float32), np.empty(0, dtype=bool)),
                                np.empty(0, dtype=object), width)
            pq.write_table(empty, _part(work, "users", p))
        parts = [np.load(f) for f in sorted(spill.glob(f"{p:05d}-*.npy"))]
        pairs = np.concatenate(parts, axis=1) if parts else np.empty((2, 0), dtype=np.int64)
        del parts
        order = np.lexsort((pairs[1], pairs[0]))
        pairs = pairs[:, order]
        assert pairs.shape[1] == 0 or (pairs[0, 0] >= start and pairs[0, -1] < stop)
        pq.write_table(pa.table([pa.array(pairs[0]), pa.array(pairs[1])], schema=schema), _part(work, "edges", p),
                       row_group_size=1 << 20)
        np.save(work / "degrees" / f"part-{p:05d}.npy", np.bincount(pairs[0] - start, minlength=stop - start).astype(np.int64))
        del pairs
    shutil.rmtree(spill)
    manifest = PartitionManifest(revision, n, friendships, feature_names, bounds, labelled)
    (work / MANIFEST).write_text(json.dumps(asdict(manifest)))
    shutil.rmtree(final, ignore_errors=True)
    work.rename(final)
    return manifest


def read_users(directory: str | Path, p: int, *, columns: Sequence[str] | None = None) -> UserPartition:
    """Partition ``p``'s users (all columns; ``columns`` limits what is decoded, the rest are
    empty arrays)."""
    import pyarrow.parquet as pq

    manifest = read_manifest(directory)
    wanted = list(columns) if columns is not None else ["position", "user_id", "external_id", "is_synthetic", "label", "features"]
    table = pq.read_table(_part(Path(directory), "users", p), columns=wanted)
    rows = table.num_rows
    width = len(manifest.feature_names)

    def col(name: str, dtype: Any) -> np.ndarray:
        if name not in wanted:
            return np.empty(0, dtype=dtype)
        return table.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)

    features = np.empty((0, width), dtype=np.float32)
    if "features" in wanted:
        flat = table.column("features").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        features = np.asarray(flat, dtype=np.float32).reshape(rows, width)
    labels = np.array(table.column("label").to_pylist(), dtype=object) if "label" in wanted else np.empty(0, dtype=object)
    return UserPartition(col("position", np.int64), col("user_id", np.int64), col("external_id", object),
                         col("is_synthetic", bool), labels, features)


def read_edges(directory: str | Path, p: int) -> tuple[np.ndarray, np.ndarray]:
    """Partition ``p``'s in-edges as a CSR block over its own rows: ``indptr`` (``int64[rows + 1]``,
    rows = the positions ``p`` owns, in order) and ``src`` (global positions, ascending per row)."""
    import pyarrow.parquet as pq

    manifest = read_manifest(directory)
    start, stop = manifest.range_of(p)
    table = pq.read_table(_part(Path(directory), "edges", p))
    dst = table.column("dst").to_numpy()
    src = table.column("src").to_numpy().astype(np.int64, copy=True)
    indptr = np.zeros(stop - start + 1, dtype=np.int64)
    np.cumsum(np.bincount(dst - start, minlength=stop - start), out=indptr[1:])
    return indptr, src


def read_degrees(directory: str | Path, p: int) -> np.ndarray:
    """``int64``: the degree of each of partition ``p``'s users, in position order."""
    return np.load(Path(directory) / "degrees" / f"part-{p:05d}.npy")
