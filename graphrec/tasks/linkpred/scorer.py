"""The trained ranker in numpy: what serving runs (no torch import).

Holds the standardisation statistics, the shared-profile weighting ``W``, the MLP weights and the
GNN node embeddings ``H`` exported from :class:`graphrec.nn.link_ranker.LinkRanker`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graphrec.tasks.linkpred.features import Candidates


@dataclass
class RankerWeights:
    """The numpy ranker. ``mean`` / ``std`` are the arrays of the pair-feature
    :class:`~graphrec.core.scaling.Standardiser` fitted in training (rule
    :data:`graphrec.tasks.linkpred.train.SCALING`), kept as arrays so serving applies
    ``(x - mean) / std`` without building one per request."""

    mean: np.ndarray  # [f]
    std: np.ndarray  # [f]
    shared: np.ndarray | None  # [d, r]
    layers: list[tuple[np.ndarray, np.ndarray]]  # (weight [out, in], bias [out]) of the MLP
    embeddings: np.ndarray | None  # [n, g] GNN embeddings of the training graph's nodes

    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {"mean": self.mean, "std": self.std}
        if self.shared is not None:
            out["shared"] = self.shared
        if self.embeddings is not None:
            out["embeddings"] = self.embeddings
        for i, (w, b) in enumerate(self.layers):
            out[f"mlp.{i}.weight"] = w
            out[f"mlp.{i}.bias"] = b
        return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "RankerWeights":
        layers = []
        i = 0
        while f"mlp.{i}.weight" in arrays:
            layers.append((arrays[f"mlp.{i}.weight"], arrays[f"mlp.{i}.bias"]))
            i += 1
        return cls(arrays["mean"], arrays["std"], arrays.get("shared"), layers, arrays.get("embeddings"))

    def score(self, cands: Candidates, user_embedding: np.ndarray | None = None) -> np.ndarray:
        """Scores of one user's candidates (higher is better)."""
        parts = [(cands.features - self.mean) / self.std]
        if self.shared is not None:
            r = self.shared.shape[1]
            parts.append(cands.shared if cands.shared is not None else np.zeros((cands.nodes.size, r)))
        if self.embeddings is not None:
            g = self.embeddings.shape[1]
            if user_embedding is None:
                parts.append(np.zeros((cands.nodes.size, g)))
            else:
                parts.append(self.embeddings[cands.nodes] * user_embedding)
        h = np.concatenate(parts, axis=1).astype(np.float32)
        for k, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if k < len(self.layers) - 1:
                np.maximum(h, 0, out=h)
        return h[:, 0].astype(np.float64)
