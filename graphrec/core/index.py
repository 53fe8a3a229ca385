"""The one FAISS wrapper (:class:`EmbeddingIndex`): nearest neighbours of unit-normalised
embeddings by inner product (= cosine), with ids, incremental upserts and deletions.

* Exact ``IndexFlatIP`` up to :data:`HNSW_THRESHOLD` vectors, ``IndexHNSWFlat`` beyond
  (:data:`HNSW_M` = 32 links, efConstruction :data:`HNSW_EF_CONSTRUCTION` = 80, efSearch
  :data:`HNSW_EF_SEARCH` = 128: the FAISS guidelines' choice for high recall at low latency).
* An index built **with keys** (external user ids, strings) wraps the base index in
  ``IndexIDMap2``: every vector carries a stable int64 *label* that maps to its key.
  :meth:`~EmbeddingIndex.upsert` adds or replaces vectors without a rebuild (a replaced vector
  gets a fresh label, the old label is removed from a flat index or *tombstoned* in an HNSW
  index, which cannot remove), :meth:`~EmbeddingIndex.remove` deletes the same way, and searches
  over-fetch and drop tombstoned labels, so a removed or replaced vector never answers again.
  It is saved as a folder: ``index.faiss`` plus an ``index.json`` sidecar (labels, keys,
  tombstones, dimension, model version) validated on load (the Siamese ``index/`` folder).
* An index built **without keys** is *positional*: row ``i`` of the embeddings has id ``i``
  (FAISS's own numbering, so no id map is needed), it is append-only, and it is saved as one
  FAISS file (the link model's ``embeddings.faiss``).

:meth:`EmbeddingIndex.load` reads either form from the path it is given (a folder or a file),
so artifacts written before this class existed still load.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

HNSW_THRESHOLD = 200_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


#: FAISS index types graphrec writes (fourcc of ``faiss.write_index``): flat inner-product / L2,
#: HNSW over flat storage, and the id maps around them
_FLAT, _HNSW_FLAT, _ID_MAPS = (b"IxFI", b"IxF2", b"IxFl"), b"IHNf", (b"IxM2", b"IxMp")
_HEADER = struct.Struct("<iqqq?i")  # d, ntotal, two dummies, is_trained, metric_type


def single_threaded_search() -> None:
    """FAISS searches on one OpenMP thread, process-wide. A server answers many small searches
    (k of 10 to 50 over one query vector) from several request threads at once; OpenMP teams per
    search only oversubscribe the cores. Index builds and batch searches keep FAISS's default."""
    import faiss

    faiss.omp_set_num_threads(1)


def check_faiss_file(path: Path) -> None:
    """Walk a FAISS index file of a type graphrec writes (flat, HNSW-flat, in an id map) without
    reading its arrays, and raise ``ValueError`` when it is not one, or when a header or array
    length claims more bytes than the file holds or a size no index of its own header has
    (e.g. a header asking for 16 GiB in a file of a few KiB): ``faiss.read_index`` allocates
    what a header claims before it reads, so a corrupt or hostile file is refused here first."""
    size = Path(path).stat().st_size
    where = f"unreadable FAISS index {path}: "
    with open(path, "rb") as fh:

        def take(n: int) -> bytes:
            data = fh.read(n)
            if len(data) != n:
                raise ValueError(f"{where}truncated (offset {fh.tell()} of {size} bytes)")
            return data

        def vector(item: int, what: str, expect: int | None = None) -> int:
            (count,) = struct.unpack("<Q", take(8))
            left = size - fh.tell()
            if count > left // item or (expect is not None and count != expect):
                want = f"{expect} expected, " if expect is not None else ""
                raise ValueError(f"{where}{what} claims {count} entries of {item} bytes ({want}{left} bytes left in the file)")
            fh.seek(count * item, 1)
            return int(count)

        def index() -> tuple[int, int]:
            fourcc = take(4)
            d, ntotal, _, _, _, metric = _HEADER.unpack(take(_HEADER.size))
            if metric > 1:
                take(4)  # metric argument
            if d <= 0 or ntotal < 0:
                raise ValueError(f"{where}dimension {d}, {ntotal} vectors")
            if fourcc in _FLAT:
                vector(4, "the vectors", ntotal * d)  # float32 codes, counted in 4-byte words
            elif fourcc == _HNSW_FLAT:
                vector(8, "the HNSW level probabilities")
                vector(4, "the HNSW neighbours per level")
                vector(4, "the HNSW levels", ntotal)
                vector(8, "the HNSW offsets", ntotal + 1)
                vector(4, "the HNSW neighbour lists")
                take(20)  # entry point, max level, efConstruction, efSearch, upper beam
                if index() != (d, ntotal):
                    raise ValueError(f"{where}HNSW storage does not match its header")
            elif fourcc in _ID_MAPS:
                if index() != (d, ntotal):
                    raise ValueError(f"{where}id map and its index disagree")
                vector(8, "the id map", ntotal)
            else:
                raise ValueError(f"{where}not a FAISS index type graphrec writes ({fourcc!r})")
            return d, ntotal

        index()
        if fh.tell() != size:
            raise ValueError(f"{where}{size - fh.tell()} unexpected bytes after the index")


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(np.atleast_2d(np.asarray(x, dtype=np.float32)))
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _base_index(dim: int, exact: bool) -> Any:
    """``IndexFlatIP`` or ``IndexHNSWFlat`` with the module's parameters."""
    import faiss

    if exact:
        return faiss.IndexFlatIP(dim)
    base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    base.hnsw.efSearch = HNSW_EF_SEARCH
    return base


class EmbeddingIndex:
    """FAISS inner-product index over unit vectors, keyed (external ids) or positional.

    Build it with :meth:`build` (or :func:`build_index`), query it with :meth:`search`
    (FAISS-style arrays of similarities and ids) or :meth:`nearest` (``(key, cosine)`` pairs,
    with exclusions), change a keyed one with :meth:`upsert` / :meth:`remove`, and persist it
    with :meth:`save` / :meth:`load`. See the module docstring for the two forms.
    """

    SIDECAR = "index.json"
    FAISS_FILE = "index.faiss"

    def __init__(self, dim: int, *, exact: bool, keyed: bool = True, model_version: str = "") -> None:
        import faiss

        self.dim, self.exact, self.keyed, self.model_version = int(dim), bool(exact), bool(keyed), model_version
        base = _base_index(self.dim, self.exact)
        self.index: Any = faiss.IndexIDMap2(base) if keyed else base
        self.label_of: dict[str, int] = {}
        self.ext_of: dict[int, str] = {}
        self.tombstones: set[int] = set()
        self.next_label = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def build(cls, vectors: np.ndarray, keys: list[str] | None = None, *, exact: bool | None = None,
              model_version: str = "", normalise: bool = True) -> "EmbeddingIndex":
        """An index over the rows of ``vectors``: keyed by ``keys`` or, without keys, positional
        (row ``i`` has id ``i``); exact or HNSW by size unless ``exact`` says.

        Rows are normalised here; ``normalise=False`` (positional indexes only) adds them as
        given, for callers whose rows are already unit vectors or normalised their own way
        (e.g. zero rows kept at zero), so the index holds exactly those vectors."""
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2:
            raise ValueError(f"vectors must be a 2-d array, got shape {x.shape}")
        if keys is not None and not normalise:
            raise ValueError("a keyed index normalises its vectors (normalise=False is for positional indexes)")
        n = x.shape[0] if keys is None else len(keys)
        idx = cls(x.shape[1], exact=n <= HNSW_THRESHOLD if exact is None else exact, keyed=keys is not None, model_version=model_version)
        if keys is None:
            idx.index.add(_unit_rows(x) if normalise else np.ascontiguousarray(x))
            idx.next_label = int(idx.index.ntotal)
        else:
            idx.upsert(keys, x)
        return idx

    # -- views -------------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Live vectors in the index (tombstoned ones not counted)."""
        return len(self.label_of) if self.keyed else int(self.index.ntotal)

    def __contains__(self, key: object) -> bool:
        if self.keyed:
            return key in self.label_of
        return isinstance(key, (int, np.integer)) and 0 <= int(key) < self.size

    def key(self, label: int) -> str | int | None:
        """The key of a live label (the label itself in a positional index), None if dead."""
        if not self.keyed:
            return int(label) if 0 <= label < self.size else None
        return self.ext_of.get(int(label))

    # -- updates (keyed indexes) -------------------------------------------------------------
    def _require_keys(self) -> None:
        if not self.keyed:
            raise ValueError("a positional index (built without keys) cannot be updated; build a keyed one")

    def _drop(self, labels: list[int]) -> None:
        if not labels:
            return
        for lab in labels:
            self.ext_of.pop(lab, None)
        if self.exact:
            self.index.remove_ids(np.asarray(labels, dtype=np.int64))
        else:
            self.tombstones.update(labels)

    def upsert(self, keys: list[str], vectors: np.ndarray) -> None:
        """Add vectors for ``keys``, or replace the vectors of keys already in the index."""
        self._require_keys()
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(keys), -1)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have {x.shape[1]} dimensions, the index {self.dim}")
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate keys in one upsert")
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self._drop([self.label_of[e] for e in keys if e in self.label_of])
        labels = np.arange(self.next_label, self.next_label + len(keys), dtype=np.int64)
        self.next_label += len(keys)
        self.index.add_with_ids(x, labels)
        for e, lab in zip(keys, labels.tolist()):
            self.label_of[e] = lab
            self.ext_of[lab] = e

    def remove(self, keys: list[str]) -> int:
        """Remove the vectors of ``keys`` (e.g. deleted accounts); returns how many were indexed."""
        self._require_keys()
        labels = [self.label_of.pop(e) for e in keys if e in self.label_of]
        self._drop(labels)
        return len(labels)

    # -- queries -----------------------------------------------------------------------------
    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """FAISS-style ``(similarities, ids)`` of the ``k`` nearest live vectors to each query row
        (``float32[q, k']``, ``int64[q, k']`` with ``k' = min(k, size)``, -1 ids pad). Ids are
        positions in a positional index and labels (see :meth:`key`) in a keyed one. Queries are
        used as given: normalise them for cosine similarities."""
        q = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        k = min(int(k), self.size)
        if not self.tombstones:
            return self.index.search(q, k)
        fetch = k
        while True:
            want = min(fetch + min(len(self.tombstones), 4 * fetch), int(self.index.ntotal))
            sims, labels = self.index.search(q, max(want, 1))
            dead = np.isin(labels, np.fromiter(self.tombstones, dtype=np.int64))
            live = (labels >= 0) & ~dead
            if (live.sum(axis=1) >= k).all() or want >= int(self.index.ntotal):
                out_s = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
                out_l = np.full((q.shape[0], k), -1, dtype=np.int64)
                for r in range(q.shape[0]):
                    keep = np.flatnonzero(live[r])[:k]
                    out_s[r, : keep.size], out_l[r, : keep.size] = sims[r, keep], labels[r, keep]
                return out_s, out_l
            fetch *= 4

    def nearest(self, vector: np.ndarray, k: int, *, exclude: set[Any] | None = None) -> list[tuple[Any, float]]:
        """The ``k`` live vectors most similar to ``vector`` (normalised here) as ``(key, cosine)``,
        best first, skipping the keys in ``exclude`` (over-fetching past them and tombstones)."""
        q = _unit_rows(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        exclude = exclude or set()
        total = int(self.index.ntotal)
        fetch = k + len(exclude)
        while True:
            want = min(fetch + min(len(self.tombstones), 4 * fetch), total)
            sims, labels = self.index.search(q, max(want, 1))
            out: list[tuple[Any, float]] = []
            for s, lab in zip(sims[0].tolist(), labels[0].tolist()):
                key = self.key(lab) if lab >= 0 else None
                if key is None or key in exclude:
                    continue
                out.append((key, float(s)))
                if len(out) == k:
                    return out
            if want >= total:
                return out
            fetch *= 4

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """A keyed index: the folder ``path`` (FAISS file and JSON sidecar); a positional one:
        the single FAISS file ``path``."""
        import faiss

        path = Path(path)
        if not self.keyed:
            faiss.write_index(self.index, str(path))
            return
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(path / self.FAISS_FILE))
        labels = sorted(self.ext_of)
        meta = {"dim": self.dim, "exact": self.exact, "model_version": self.model_version, "next_label": self.next_label,
                "labels": labels, "external_ids": [self.ext_of[lab] for lab in labels], "tombstones": sorted(self.tombstones)}
        (path / self.SIDECAR).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, path: Path, *, model_version: str | None = None, dim: int | None = None, size: int | None = None) -> "EmbeddingIndex":
        """Load what :meth:`save` wrote (a folder: keyed; a file: positional) and validate it:
        the FAISS dimension against the sidecar and ``dim``, the vector count against the keys
        and tombstones (and ``size`` when given), and the model version the keyed index was built
        for. The FAISS file is walked first (:func:`check_faiss_file`), so a header claiming more
        than the file holds is a ``ValueError`` before FAISS allocates anything. ``ValueError``
        names every mismatch; FAISS raises ``RuntimeError`` for an otherwise unreadable file."""
        import faiss

        path = Path(path)
        idx = cls.__new__(cls)
        idx.label_of, idx.ext_of, idx.tombstones = {}, {}, set()
        problems = []
        if path.is_dir():
            meta = json.loads((path / cls.SIDECAR).read_text(encoding="utf-8"))
            check_faiss_file(path / cls.FAISS_FILE)
            idx.index = faiss.read_index(str(path / cls.FAISS_FILE))
            idx.keyed = True
            idx.dim, idx.exact, idx.model_version, idx.next_label = int(meta["dim"]), bool(meta["exact"]), str(meta["model_version"]), int(meta["next_label"])
            idx.ext_of = dict(zip((int(x) for x in meta["labels"]), (str(e) for e in meta["external_ids"])))
            idx.label_of = {e: lab for lab, e in idx.ext_of.items()}
            idx.tombstones = set(int(x) for x in meta["tombstones"])
            if int(idx.index.ntotal) != len(idx.ext_of) + (0 if idx.exact else len(idx.tombstones)):
                problems.append(f"{idx.index.ntotal} vectors for {len(idx.ext_of)} users and {len(idx.tombstones)} tombstones")
            if model_version is not None and idx.model_version != model_version:
                problems.append(f"built for model {idx.model_version!r}, not {model_version!r}")
        else:
            check_faiss_file(path)
            idx.index = faiss.read_index(str(path))
            idx.keyed, idx.dim, idx.model_version = False, int(idx.index.d), ""
            idx.exact = not hasattr(idx.index, "hnsw")
            idx.next_label = int(idx.index.ntotal)
        if idx.index.d != idx.dim or (dim is not None and dim != idx.dim):
            problems.append(f"dimension {idx.index.d} (expected {dim or idx.dim})")
        if size is not None and idx.size != size:
            problems.append(f"{idx.size} vectors (expected {size})")
        if problems:
            raise ValueError("index does not match: " + "; ".join(problems))
        return idx


def build_index(embeddings: np.ndarray, keys: list[str] | None = None, *, exact: bool | None = None, model_version: str = "") -> EmbeddingIndex:
    """:meth:`EmbeddingIndex.build`: an index over the rows of ``embeddings`` (normalised here),
    positional without ``keys``, exact or HNSW by size."""
    return EmbeddingIndex.build(embeddings, keys, exact=exact, model_version=model_version)
