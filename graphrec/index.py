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
