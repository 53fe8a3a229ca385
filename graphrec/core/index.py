"""FAISS index over unit-normalised embeddings (inner product = cosine).

Exact ``IndexFlatIP`` up to :data:`HNSW_THRESHOLD` vectors; beyond that ``IndexHNSWFlat``
(M=32, efConstruction=80, efSearch=128; the FAISS guidelines' choice for high recall at low
latency). Ids are node positions, so results map straight back to the artifact's id list.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HNSW_THRESHOLD = 200_000


class EmbeddingIndex:
    """Thin FAISS wrapper: build, save, load, search."""

    def __init__(self, index: object, dim: int) -> None:
        self.index = index
        self.dim = dim

    @property
    def size(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, ids) of the ``k`` nearest vectors to each query row (-1 ids pad)."""
        q = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        return self.index.search(q, min(k, self.size))  # type: ignore[attr-defined]

    def save(self, path: Path) -> None:
        import faiss

        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path) -> "EmbeddingIndex":
        import faiss

        index = faiss.read_index(str(path))
        return cls(index, index.d)


def build_index(embeddings: np.ndarray) -> EmbeddingIndex:
    """An index over the rows of ``embeddings`` (normalised here), exact or HNSW by size."""
    import faiss

    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.maximum(norms, 1e-12)
    dim = x.shape[1]
    if x.shape[0] <= HNSW_THRESHOLD:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.hnsw.efSearch = 128
    index.add(x)
    return EmbeddingIndex(index, dim)


class UserIndex:
    """FAISS index of user embeddings keyed by external id, with incremental updates.

    * Exact ``IndexFlatIP`` up to :data:`HNSW_THRESHOLD` users, ``IndexHNSWFlat`` (M=32,
      efConstruction 80, efSearch 128) beyond, both wrapped in ``IndexIDMap2`` so FAISS ids are
      stable labels that map to external ids.
    * ``upsert`` adds or replaces users' vectors without a rebuild: the new vector gets a fresh
      label and the old label is removed (flat) or *tombstoned* (HNSW has no removal), and
      ``remove`` does the same for deleted users. Searches over-fetch and drop tombstoned labels,
      so a removed or replaced vector never comes back; :attr:`needs_rebuild` says when
      tombstones exceed 20% of the index.
    * ``save`` / ``load`` write the FAISS index plus a JSON sidecar (labels, external ids,
      tombstones, dimension, model version), validated on load.
    """

    SIDECAR = "index.json"

    def __init__(self, dim: int, *, exact: bool, model_version: str = "") -> None:
        import faiss

        self.dim, self.exact, self.model_version = dim, exact, model_version
        if exact:
            base = faiss.IndexFlatIP(dim)
        else:
            base = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            base.hnsw.efConstruction = 80
            base.hnsw.efSearch = 128
        self.index = faiss.IndexIDMap2(base)
        self.label_of: dict[str, int] = {}
        self.ext_of: dict[int, str] = {}
        self.tombstones: set[int] = set()
        self.next_label = 0

    @classmethod
    def build(cls, external_ids: list[str], vectors: np.ndarray, *, model_version: str = "", exact: bool | None = None) -> "UserIndex":
        """An index over ``vectors`` (normalised here) for ``external_ids``; exact or HNSW by size."""
        idx = cls(vectors.shape[1], exact=len(external_ids) <= HNSW_THRESHOLD if exact is None else exact, model_version=model_version)
        idx.upsert(external_ids, vectors)
        return idx

    @property
    def size(self) -> int:
        """Live users in the index."""
        return len(self.label_of)

    @property
    def needs_rebuild(self) -> bool:
        return len(self.tombstones) > 0.2 * max(int(self.index.ntotal), 1)

    def __contains__(self, external_id: str) -> bool:
        return external_id in self.label_of

    def _drop(self, labels: list[int]) -> None:
        if not labels:
            return
        for lab in labels:
            self.ext_of.pop(lab, None)
        if self.exact:
            self.index.remove_ids(np.asarray(labels, dtype=np.int64))
        else:
            self.tombstones.update(labels)

    def upsert(self, external_ids: list[str], vectors: np.ndarray) -> None:
        """Add users, or replace the vectors of users already in the index."""
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(external_ids), -1)
        if x.shape[1] != self.dim:
            raise ValueError(f"vectors have {x.shape[1]} dimensions, the index {self.dim}")
        if len(set(external_ids)) != len(external_ids):
            raise ValueError("duplicate external ids in one upsert")
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        self._drop([self.label_of[e] for e in external_ids if e in self.label_of])
        labels = np.arange(self.next_label, self.next_label + len(external_ids), dtype=np.int64)
        self.next_label += len(external_ids)
        self.index.add_with_ids(x, labels)
        for e, lab in zip(external_ids, labels.tolist()):
            self.label_of[e] = lab
            self.ext_of[lab] = e

    def remove(self, external_ids: list[str]) -> int:
        """Remove users (e.g. deleted accounts); returns how many were indexed."""
        labels = [self.label_of.pop(e) for e in external_ids if e in self.label_of]
        self._drop(labels)
        return len(labels)

    def search(self, vector: np.ndarray, k: int, *, exclude: set[str] | None = None) -> list[tuple[str, float]]:
        """The ``k`` most similar live users to ``vector`` as (external id, cosine), best first."""
        q = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        exclude = exclude or set()
        fetch = k + len(exclude)
        while True:
            want = min(fetch + min(len(self.tombstones), 4 * fetch), int(self.index.ntotal))
            sims, labels = self.index.search(q, max(want, 1))
            out = []
            for s, lab in zip(sims[0].tolist(), labels[0].tolist()):
                ext = self.ext_of.get(lab)
                if lab < 0 or ext is None or ext in exclude:
                    continue
                out.append((ext, float(s)))
                if len(out) == k:
                    return out
            if want >= int(self.index.ntotal):
                return out
            fetch *= 4

    def save(self, folder: Path) -> None:
        import json

        import faiss

        folder.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(folder / "index.faiss"))
        labels = sorted(self.ext_of)
        meta = {"dim": self.dim, "exact": self.exact, "model_version": self.model_version, "next_label": self.next_label,
                "labels": labels, "external_ids": [self.ext_of[lab] for lab in labels], "tombstones": sorted(self.tombstones)}
        (folder / self.SIDECAR).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, *, model_version: str | None = None, dim: int | None = None) -> "UserIndex":
        """Load and validate (dimension, vector count, model version)."""
        import json

        import faiss

        meta = json.loads((folder / cls.SIDECAR).read_text(encoding="utf-8"))
        idx = cls.__new__(cls)
        idx.index = faiss.read_index(str(folder / "index.faiss"))
        idx.dim, idx.exact, idx.model_version, idx.next_label = int(meta["dim"]), bool(meta["exact"]), meta["model_version"], int(meta["next_label"])
        idx.ext_of = dict(zip((int(x) for x in meta["labels"]), meta["external_ids"]))
        idx.label_of = {e: lab for lab, e in idx.ext_of.items()}
        idx.tombstones = set(int(x) for x in meta["tombstones"])
        problems = []
        if idx.index.d != idx.dim or (dim is not None and dim != idx.dim):
            problems.append(f"dimension {idx.index.d} (expected {dim or idx.dim})")
        if int(idx.index.ntotal) != len(idx.ext_of) + (0 if idx.exact else len(idx.tombstones)):
            problems.append(f"{idx.index.ntotal} vectors for {len(idx.ext_of)} users and {len(idx.tombstones)} tombstones")
        if model_version is not None and idx.model_version != model_version:
            problems.append(f"built for model {idx.model_version!r}, not {model_version!r}")
        if problems:
            raise ValueError("index does not match: " + "; ".join(problems))
        return idx
