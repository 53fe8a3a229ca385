"""A consistent, read-only snapshot of the graph for training and analysis.

Nodes are the store's active (not deleted) users, indexed ``0..n-1`` in internal-id order.
The snapshot carries the index <-> external id mapping, the symmetric CSR adjacency, the feature
matrix, labels and circles, and the store revision it was read at (its data version). It converts
to a PyTorch Geometric ``Data``, a SciPy CSR matrix, a ``torch.sparse_csr`` adjacency or a
networkx graph. ``torch_geometric`` is imported only by :meth:`Snapshot.to_pyg`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, select, text

from graphrec.store.bulk import driver_connection
from graphrec.store.schema import Circle, CircleMember, FeatureColumn, Label, StoreRevision, utcnow
from graphrec.store.vectors import decode_rows

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx
    import scipy.sparse as sp
    import torch
    from torch_geometric.data import Data


@dataclass(frozen=True)
class CircleInfo:
    """A circle in snapshot coordinates."""

    name: str
    owner: int | None  # node index of the owner, or None
    members: np.ndarray  # node indices, int64, sorted


@dataclass
class Snapshot:
    """Graph snapshot. Arrays are numpy; node ``i`` is ``external_ids[i]``.

    Attributes:
        revision: store data version the snapshot was read at.
        user_ids: internal ids, ``int64[n]`` ascending.
        external_ids: external ids, ``object[n]`` of ``str``.
        indptr, indices: symmetric CSR adjacency (each friendship appears in both rows).
        features: ``float32[n, d]``; ``feature_names[j]`` names column ``j``.
        is_synthetic: ``bool[n]``.
        labels: ``object[n]``: the user's current label or ``None``.
        circles: social circles with members as node indices.
        read_at: UTC time the read started (taken before its first query, so every change
            committed after it is newer than the snapshot: an incremental update from this
            time misses nothing).
    """

    revision: int
    user_ids: np.ndarray
    external_ids: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    features: np.ndarray
    feature_names: list[str]
    is_synthetic: np.ndarray
    labels: np.ndarray
    circles: list[CircleInfo] = field(default_factory=list)
    read_at: dt.datetime | None = None
    _index: dict[str, int] | None = field(default=None, repr=False)

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.user_ids.size)

    @property
    def num_edges(self) -> int:
        """Number of undirected friendships."""
        return int(self.indices.size // 2)

    @property
    def degrees(self) -> np.ndarray:
        return np.diff(self.indptr)

    # -- mapping -----------------------------------------------------------------------------
    def index_of(self, external_id: str) -> int:
        """Node index of an external id (``KeyError`` if the user is not in the snapshot)."""
        if self._index is None:
            self._index = {ext: i for i, ext in enumerate(self.external_ids.tolist())}
        return self._index[str(external_id)]

    def neighbors(self, index: int) -> np.ndarray:
        return self.indices[self.indptr[index] : self.indptr[index + 1]]

    def edge_array(self) -> np.ndarray:
        """Undirected edges once each, ``int64[m, 2]`` with ``u < v`` (node indices)."""
        return edge_array(self.indptr, self.indices)

    def label_codes(self) -> tuple[np.ndarray, list[str]]:
        """Labels as ``int64[n]`` codes (-1 = unlabelled) and the sorted class names."""
        mask = np.array([lab is not None for lab in self.labels], dtype=bool)
        classes = sorted({str(lab) for lab in self.labels[mask]})
        lookup = {c: i for i, c in enumerate(classes)}
        codes = np.full(self.num_nodes, -1, dtype=np.int64)
        codes[mask] = [lookup[str(lab)] for lab in self.labels[mask]]
        return codes, classes

    def fingerprint(self) -> str:
        """SHA-256 over ids, adjacency, features and labels: equal snapshots, equal fingerprints."""
        h = hashlib.sha256()
        h.update(struct.pack("<qq", self.num_nodes, self.indices.size))
        h.update("\x1f".join(self.external_ids.tolist()).encode())
        h.update(np.ascontiguousarray(self.indptr, dtype="<i8").tobytes())
        h.update(np.ascontiguousarray(self.indices, dtype="<i8").tobytes())
        h.update("\x1f".join(self.feature_names).encode())
        h.update(np.ascontiguousarray(self.features, dtype="<f4").tobytes())
        h.update("\x1f".join("" if lab is None else str(lab) for lab in self.labels.tolist()).encode())
        return h.hexdigest()

    def data_version(self) -> dict[str, Any]:
        """What a model trained on this snapshot records as its data version: ``{revision,
        fingerprint, users, friendships, read_at}`` (``read_at`` as ISO 8601 UTC)."""
        return {"revision": self.revision, "fingerprint": self.fingerprint(), "users": self.num_nodes, "friendships": self.num_edges,
                "read_at": self.read_at_iso()}

    def read_at_iso(self) -> str | None:
        """:attr:`read_at` as ISO 8601 text (None when the snapshot was not read from a store)."""
        return None if self.read_at is None else self.read_at.isoformat()

    # -- conversions -------------------------------------------------------------------------
    def to_scipy(self) -> "sp.csr_matrix":
        import scipy.sparse as sp

        data = np.ones(self.indices.size, dtype=np.float32)
        return sp.csr_matrix((data, self.indices, self.indptr), shape=(self.num_nodes, self.num_nodes))

    def adjacency_tensor(self) -> "torch.Tensor":
        """Symmetric adjacency as a ``torch.sparse_csr`` tensor (fast message passing on CPU)."""
        import warnings

        import torch

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(
                torch.from_numpy(self.indptr.astype(np.int64)),
                torch.from_numpy(self.indices.astype(np.int64)),
                torch.ones(self.indices.size, dtype=torch.float32),
                size=(self.num_nodes, self.num_nodes),
                check_invariants=False,
            )

    def to_pyg(self) -> "Data":
        """PyTorch Geometric ``Data``: ``x``, ``edge_index`` (both directions), ``y`` (-1 unlabelled),
        ``is_synthetic``, plus ``external_ids``, ``label_classes`` and ``revision``."""
        import torch
        from torch_geometric.data import Data

        rows = np.repeat(np.arange(self.num_nodes, dtype=np.int64), np.diff(self.indptr))
        edge_index = torch.from_numpy(np.stack([rows, self.indices.astype(np.int64)]))
        codes, classes = self.label_codes()
        return Data(
            x=torch.from_numpy(self.features),
            edge_index=edge_index,
            y=torch.from_numpy(codes),
            is_synthetic=torch.from_numpy(self.is_synthetic.copy()),
            num_nodes=self.num_nodes,
            external_ids=self.external_ids.tolist(),
            label_classes=classes,
            revision=self.revision,
        )

    def to_networkx(self, *, node_key: str = "external") -> "nx.Graph":
        """networkx graph; nodes keyed by external id (``node_key="external"``) or index.
        Node attributes: ``index``/``external_id``, ``is_synthetic``, ``label``."""
        import networkx as nx

        if node_key not in ("external", "index"):
            raise ValueError("node_key must be 'external' or 'index'")
        keys: list[Any] = self.external_ids.tolist() if node_key == "external" else list(range(self.num_nodes))
        g = nx.Graph()
        synth = self.is_synthetic.tolist()
        labels = self.labels.tolist()
        g.add_nodes_from(
            (keys[i], {"index": i, "external_id": self.external_ids[i], "is_synthetic": synth[i], "label": labels[i]})
            for i in range(self.num_nodes)
        )
        edges = self.edge_array()
        g.add_edges_from((keys[u], keys[v]) for u, v in edges.tolist())
        return g


def read_snapshot(
    conn: Connection,
    *,
    include_synthetic: bool = True,
    label_source: str | None = None,
) -> Snapshot:
    """Read a snapshot inside the caller's (repeatable-read) transaction.

    The user and friendship rows, a million and more, are fetched through the driver
    (:func:`_fetch_all`, :func:`_read_pairs`: binary ``COPY`` on PostgreSQL); the small reads
    are Core statements."""
    read_at = utcnow()  # before the first query: PostgreSQL's repeatable-read snapshot is taken at it
    revision = int(conn.execute(select(StoreRevision.revision).where(StoreRevision.id == 1)).scalar_one())
    where = "deleted_at IS NULL" + ("" if include_synthetic else " AND is_synthetic = :f")
    params = {} if include_synthetic else {"f": False}
    rows = _fetch_all(conn, f"SELECT id, external_id, features, is_synthetic FROM users WHERE {where} ORDER BY id", params)
    n = len(rows)
    user_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    external_ids = np.array([r[1] for r in rows], dtype=object)
    is_synthetic = np.fromiter((bool(r[3]) for r in rows), dtype=bool, count=n)
    feature_names = list(conn.execute(select(FeatureColumn.name).order_by(FeatureColumn.position)).scalars())
    features = decode_rows([r[2] for r in rows], len(feature_names))
    del rows

    lo, hi = _read_pairs(conn)
    src = np.searchsorted(user_ids, lo)
    dst = np.searchsorted(user_ids, hi)
    ok = (src < n) & (dst < n)
    ok[ok] &= (user_ids[src[ok]] == lo[ok]) & (user_ids[dst[ok]] == hi[ok])
    src, dst = src[ok], dst[ok]
    indptr, indices = symmetric_csr(src, dst, n)

    labels = np.full(n, None, dtype=object)
    label_query = select(Label.user_id, Label.label)
    if label_source is not None:
        label_query = label_query.where(Label.source == label_source)
    label_query = label_query.order_by(Label.updated_at, Label.source)  # latest label wins
    for uid, lab in conn.execute(label_query):
        i = int(np.searchsorted(user_ids, uid))
        if i < n and user_ids[i] == uid:
            labels[i] = lab

    circles: list[CircleInfo] = []
    members: dict[int, list[int]] = {}
    for cid, uid in conn.execute(select(CircleMember.circle_id, CircleMember.user_id)):
        members.setdefault(int(cid), []).append(int(uid))
    for cid, name, owner in conn.execute(select(Circle.id, Circle.name, Circle.owner_id).order_by(Circle.id)):
        idx = _indices_of(user_ids, np.asarray(members.get(int(cid), []), dtype=np.int64))
        owner_idx = None
        if owner is not None:
            found = _indices_of(user_ids, np.asarray([owner], dtype=np.int64))
            owner_idx = int(found[0]) if found.size else None
        circles.append(CircleInfo(name=name, owner=owner_idx, members=np.sort(idx)))

    return Snapshot(
        revision=revision,
        user_ids=user_ids,
        external_ids=external_ids,
        indptr=indptr,
        indices=indices,
        features=features,
        feature_names=feature_names,
        is_synthetic=is_synthetic,
        labels=labels,
        circles=circles,
        read_at=read_at,
    )


def _fetch_all(conn: Connection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Rows as plain tuples straight from the driver (SQLAlchemy row objects cost ~2 us each)."""
    stmt = text(sql).bindparams(**params) if params else text(sql)
    compiled = stmt.compile(dialect=conn.dialect)
    cur = driver_connection(conn).cursor()
    try:
        if conn.dialect.name == "sqlite":
            cur.execute(str(compiled), [compiled.params[k] for k in compiled.positiontup or []])
        else:
            cur.execute(str(compiled), compiled.params)
        return cur.fetchall()
    finally:
        cur.close()


def _indices_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(sorted_ids, ids)
    ok = pos < sorted_ids.size
    ok[ok] &= sorted_ids[pos[ok]] == ids[ok]
    return pos[ok].astype(np.int64)


def symmetric_csr(src: np.ndarray, dst: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The symmetric CSR adjacency (``indptr``, ``indices``; rows sorted) of the undirected edges
    ``src[i] - dst[i]``, each given once: graphrec's one CSR builder (the snapshot reader and
    :func:`graphrec.core.graph.csr_from_edges` use it)."""
    rows = np.concatenate([src, dst]).astype(np.int64)
    cols = np.concatenate([dst, src]).astype(np.int64)
    order = np.argsort((rows << 32) | cols) if n < 2**31 else np.lexsort((cols, rows))
    indices = cols[order]
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return indptr, indices


def edge_array(indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The undirected edges of a symmetric CSR adjacency once each, ``int64[m, 2]`` with
    ``u < v`` in row order: the inverse of :func:`symmetric_csr` (the snapshot and
    :class:`graphrec.core.graph.Graph` use it)."""
    rows = np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))
    keep = rows < indices
    return np.stack([rows[keep], indices[keep]], axis=1)


def copy_pairs(conn: Connection, query: str) -> tuple[np.ndarray, np.ndarray]:
    """The two ``bigint`` columns of ``query``'s rows as int64 arrays, by binary ``COPY ... TO
    STDOUT`` (PostgreSQL only; ``query`` carries no parameters): parsed by numpy, no Python object
    per row."""
    raw = driver_connection(conn)
    buf = bytearray()
    with raw.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT binary)") as copy:
            for chunk in copy:
                buf += chunk
    header = 19  # signature (11) + flags (4) + extension length (4, zero)
    body = memoryview(buf)[header : len(buf) - 2]
    row = np.dtype([("n", ">i2"), ("la", ">i4"), ("a", ">i8"), ("lb", ">i4"), ("b", ">i8")])
    arr = np.frombuffer(body, dtype=row)
    return arr["a"].astype(np.int64), arr["b"].astype(np.int64)


def _read_pairs(conn: Connection) -> tuple[np.ndarray, np.ndarray]:
    """All friendship rows as two int64 arrays (binary COPY on PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        return copy_pairs(conn, "SELECT user_lo, user_hi FROM friendships")
    cur = driver_connection(conn).cursor()
    cur.execute("SELECT user_lo, user_hi FROM friendships")
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    while True:
        chunk = cur.fetchmany(1_000_000)
        if not chunk:
            break
        arr = np.array(chunk, dtype=np.int64)
        los.append(arr[:, 0])
        his.append(arr[:, 1])
    if not los:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return np.concatenate(los), np.concatenate(his)
